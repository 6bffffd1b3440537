"""The decoder's attention of the 26B-A4B configuration on the GPU, one layer of each kind: the Triton canvas
attention (engine/kernels/canvas_attention.py) over a sweep of tiles, against what the stock decoder does (concatenate
the prompt K/V with the canvas, then scaled-dot-product attention with a mask) and the floor of reading the K/V once.
Also checks each result against the float32 reference.

    python -m bench.gpu.attention_kernels [--canvas 64 256] [--batch 1 4] [--quick] [--out bench/results]

Prints a table (best tiles per case) and writes JSON with every tile timed, the device and the commit.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from bench.gpu.moe_kernels import time_ms
from bench.lib.random_model import copy_bandwidth
from bench.lib.report import commit
from diffusion_copilot.engine.kernels.canvas_attention import (
    AttentionTiles,
    canvas_attention,
    reference_canvas_attention,
)

# (layer kind, query heads, K/V heads, head dim, prompt slots): a sliding layer keeps window - 1 tokens.
LAYERS = (("sliding", 16, 8, 256, 1024), ("global", 16, 2, 512, 2048))


def stock(query: Any, pk: Any, pv: Any, lengths: Any, ck: Any, cv: Any, canvas_len: int) -> torch.Tensor:
    """The stock decoder's way: concatenate, build the boolean mask, run SDPA with grouped-query heads."""
    keys, values = torch.cat([pk, ck], dim=2), torch.cat([pv, cv], dim=2)
    slots = pk.shape[2]
    position = torch.arange(keys.shape[2], device=query.device)
    visible = torch.where(
        position[None] < slots, position[None] < lengths[:, None], position[None] - slots < canvas_len
    )
    out = torch.nn.functional.scaled_dot_product_attention(
        query, keys, values, attn_mask=visible[:, None, None, :], scale=1.0, enable_gqa=True
    )
    return out.transpose(1, 2)


def tile_sweep(quick: bool, dim: int) -> list[AttentionTiles]:
    if quick:
        return [AttentionTiles(32 if dim > 256 else 64, 32, 512, 4, 2)]
    return [
        AttentionTiles(m, n, split, warps, stages)
        for m, n, split, warps, stages in itertools.product((16, 32, 64), (32, 64), (256, 512), (4, 8), (2,))
        if not (dim > 256 and m == 64)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--canvas", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args()
    device = torch.device("cuda")
    bandwidth = copy_bandwidth(device, 1 << 30)
    generator = torch.Generator(device=device).manual_seed(0)
    report: dict[str, Any] = {"device": torch.cuda.get_device_name(device), "commit": commit(), "cases": []}
    print(f"{report['device']}, copy bandwidth {bandwidth / 1e12:.2f} TB/s")
    print(f"{'layer':8} {'batch':>5} {'canvas':>6} {'floor':>7} {'stock':>7} {'kernel':>7}  best tiles")
    for (kind, heads, kv_heads, dim, slots), batch, canvas in itertools.product(LAYERS, args.batch, args.canvas):

        def rand(*shape: int) -> torch.Tensor:
            return torch.randn(*shape, device=device, dtype=torch.bfloat16, generator=generator)

        query = rand(batch, heads, canvas, dim) / dim**0.5
        pk, pv = rand(batch, kv_heads, slots, dim), rand(batch, kv_heads, slots, dim)
        ck, cv = rand(batch, kv_heads, canvas, dim), rand(batch, kv_heads, canvas, dim)
        lengths = torch.full((batch,), slots - 3, dtype=torch.int32, device=device)
        canvas_len = torch.tensor([canvas], dtype=torch.int32, device=device)
        inputs = (query, pk, pv, lengths, ck, cv)
        floor_ms = 2 * (slots + canvas) * batch * kv_heads * dim * 2 / bandwidth * 1e3
        want = reference_canvas_attention(*inputs, canvas, 1.0).float()
        stock_ms = time_ms(functools.partial(stock, *inputs, canvas))
        timed = []
        for tiles in tile_sweep(args.quick, dim):
            try:
                got = canvas_attention(*inputs, canvas_len, 1.0, tiles).float()
                ms = time_ms(functools.partial(canvas_attention, *inputs, canvas_len, 1.0, tiles))
            except Exception as err:  # a tile that does not fit here is recorded, not fatal
                timed.append({"tiles": asdict(tiles), "error": str(err).splitlines()[0][:200]})
                continue
            error = float((got - want).abs().max())
            timed.append({"tiles": asdict(tiles), "ms": round(ms, 4), "max_abs_error": round(error, 5)})
        ok = [t for t in timed if "ms" in t]
        best = min(ok, key=lambda t: t["ms"]) if ok else None
        report["cases"].append(
            {
                "layer": kind,
                "batch": batch,
                "canvas": canvas,
                "floor_ms": round(floor_ms, 4),
                "stock_ms": round(stock_ms, 4),
                "best": best,
                "tiles": timed,
            }
        )
        kernel = f"{best['ms']:7.3f}  {best['tiles']} err {best['max_abs_error']}" if best else "failed"
        print(f"{kind:8} {batch:5} {canvas:6} {floor_ms:7.3f} {stock_ms:7.3f} {kernel}")
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "attention_kernels.json").write_text(json.dumps(report, indent=1))
    print(f"JSON: {args.out / 'attention_kernels.json'}")


if __name__ == "__main__":
    main()
