"""One MoE layer of the 26B-A4B configuration (128 experts, top-8, hidden 2816, expert width 704) on the GPU: the
Triton fused kernels (engine/kernels/fused_moe.py) over a sweep of tile sizes, against torch's grouped matmuls
(the engine's path today) and the floor of streaming the experts each call touches, in bf16 and fp8 weights.
Also checks each fused result against the float32 reference.

    python -m bench.gpu.moe_kernels [--tokens 16 64 256 1024] [--quick] [--out bench/results]

Prints a table (best tiles per case) and writes JSON with every tile timed, the device and the commit.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import platform
import statistics
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from bench.lib.random_model import copy_bandwidth
from bench.lib.report import commit
from diffusion_copilot.engine.kernels.fp8 import quantize_weight
from diffusion_copilot.engine.kernels.fused_moe import ExpertTensors, MoeTiles, fused_moe, gelu_tanh, reference_moe
from diffusion_copilot.engine.kernels.grouped_moe import ExpertWeights, Fp8ExpertWeights, GroupedExperts, probe_kernels

EXPERTS, TOP_K, HIDDEN, INTER = 128, 8, 2816, 704


def time_ms(fn: Any, runs: int = 20) -> float:
    """Median GPU time of one call of `fn`, replayed from a CUDA graph as the engine's step runs it (so launch
    overhead on the host does not count); eager calls timed by CUDA events if capture fails."""
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    try:
        with torch.cuda.graph(graph):
            fn()
        call = graph.replay
    except Exception:  # not capturable: time eager calls instead
        call = fn
    call()
    times = []
    for _ in range(runs):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        call()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def tile_sweep(quick: bool) -> list[MoeTiles]:
    if quick:
        return [MoeTiles(16, 64, 64, 4, 3), MoeTiles(16, 128, 128, 4, 4), MoeTiles(32, 64, 128, 4, 4)]
    shapes = ((32, 128), (64, 64), (64, 128), (64, 256), (128, 64), (128, 128))
    sweep = [MoeTiles(m, n, k, 4, stages) for m, (n, k), stages in itertools.product((16, 32, 64), shapes, (3, 4))]
    return sweep + [MoeTiles(m, 64, 128, 8, 4) for m in (16, 32, 64)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, nargs="+", default=[16, 64, 128, 256, 512, 1024])
    parser.add_argument("--table", type=Path, help="also write the best tiles per format and tokens to this table")
    parser.add_argument("--quick", action="store_true", help="three tile configurations instead of the sweep")
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args()
    device = torch.device("cuda")
    bandwidth = copy_bandwidth(device, 2 << 30)
    generator = torch.Generator(device=device).manual_seed(0)
    dtype = torch.bfloat16
    gate_up = torch.randn(EXPERTS, 2 * INTER, HIDDEN, device=device, dtype=dtype, generator=generator) * 0.02
    down = torch.randn(EXPERTS, HIDDEN, INTER, device=device, dtype=dtype, generator=generator) * 0.02
    formats = {"bf16": (ExpertTensors(gate_up), ExpertTensors(down), 2)}
    formats["fp8"] = (ExpertTensors(*quantize_weight(gate_up)), ExpertTensors(*quantize_weight(down)), 1)
    kernels = probe_kernels(device, dtype)
    stock = {
        "bf16": GroupedExperts(
            ExpertWeights(torch.nn.Parameter(gate_up, requires_grad=False), kernels.grouped_mm),
            ExpertWeights(torch.nn.Parameter(down, requires_grad=False), kernels.grouped_mm),
            gelu_tanh,
            EXPERTS,
        ),
        "fp8": GroupedExperts(
            Fp8ExpertWeights(gate_up, kernels.scaled_grouped_mm),
            Fp8ExpertWeights(down, kernels.scaled_grouped_mm),
            gelu_tanh,
            EXPERTS,
        ),
    }
    report: dict[str, Any] = {
        "device": torch.cuda.get_device_name(device),
        "commit": commit(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "copy_bandwidth_TBps": round(bandwidth / 1e12, 3),
        "kernels": asdict(kernels),
        "cases": [],
    }
    print(f"{report['device']}, copy bandwidth {bandwidth / 1e12:.2f} TB/s, torch kernels {kernels}")
    print(
        f"{'format':6} {'tokens':>6} {'experts':>7} {'floor':>7} {'torch':>7} {'fused':>7} {'x floor':>7}  best tiles"
    )
    for name, (gu, dn, element_bytes) in formats.items():
        for tokens in args.tokens:
            x = torch.randn(tokens, HIDDEN, device=device, dtype=dtype, generator=generator)
            scores = torch.randn(tokens, EXPERTS, device=device, generator=generator)
            weights, index = scores.softmax(-1).topk(TOP_K, dim=-1)
            weights = weights / weights.sum(-1, keepdim=True)
            touched = int(index.unique().numel())
            floor_ms = touched * 3 * INTER * HIDDEN * element_bytes / bandwidth * 1e3
            want = reference_moe(x, gu, dn, index, weights).float()
            scale = float(want.abs().max())
            stock_ms = time_ms(functools.partial(stock[name], x, index, weights))
            timed = []
            for tiles in tile_sweep(args.quick):
                try:
                    got = fused_moe(x, gu, dn, index, weights, tiles).float()
                    ms = time_ms(functools.partial(fused_moe, x, gu, dn, index, weights, tiles))
                except Exception as err:  # a tile that does not compile here is recorded, not fatal
                    timed.append({"tiles": asdict(tiles), "error": str(err).splitlines()[0][:200]})
                    continue
                error = float((got - want).abs().max()) / scale
                timed.append({"tiles": asdict(tiles), "ms": round(ms, 4), "max_rel_error": round(error, 5)})
            ok = [t for t in timed if "ms" in t]
            best = min(ok, key=lambda t: t["ms"]) if ok else None
            case = {
                "format": name,
                "tokens": tokens,
                "experts_touched": touched,
                "floor_ms": round(floor_ms, 4),
                "torch_grouped_ms": round(stock_ms, 4),
                "best": best,
                "tiles": timed,
            }
            report["cases"].append(case)
            fused = (
                f"{best['ms']:7.3f} {best['ms'] / floor_ms:7.2f}  {best['tiles']} err {best['max_rel_error']}"
                if best
                else "failed"
            )
            print(f"{name:6} {tokens:6} {touched:7} {floor_ms:7.3f} {stock_ms:7.3f} {fused}")
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / "moe_kernels.json").write_text(json.dumps(report, indent=1))
            if args.table:  # after every case, so a run cut short still leaves its rows
                write_table(args.table, report)
    print(f"JSON: {args.out / 'moe_kernels.json'}" + (f", table: {args.table}" if args.table else ""))


def write_table(path: Path, report: dict[str, Any]) -> None:
    """Merge this device's best tiles into the engine's table (engine/kernels/moe_tiles.json), keyed by the
    device's compute capability: for each format, (up to this many tokens, tiles) rows, or "grouped" where torch's
    grouped matmuls beat every tile."""
    table = json.loads(path.read_text()) if path.exists() else {}
    major, minor = torch.cuda.get_device_capability()
    rows: dict[str, list[Any]] = {}
    for case in report["cases"]:
        best = case["best"]
        faster = best and best["ms"] < case["torch_grouped_ms"]
        rows.setdefault(case["format"], []).append([case["tokens"], best["tiles"] if faster else "grouped"])
    table[f"sm_{major}{minor}"] = {"device": report["device"], "commit": report["commit"], **rows}
    path.write_text(json.dumps(table, indent=1) + "\n")


if __name__ == "__main__":
    main()
