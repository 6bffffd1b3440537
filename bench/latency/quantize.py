"""Time and peak host memory of `diffusion-copilot quantize` on the full-size 26B-A4B shape (random bf16 weights).

The benchmark writes the source checkpoint itself: the tensor names a `save_pretrained` of this model class writes
(taken from a tiny model saved with the same layer count), the full-size shapes, random bf16 values, in shards of
`--shard-gb`. Then it runs the real command once per format in a child process and reads the child's wall time and
peak resident memory (`wait4`). `--layers` below 30 (a multiple of 6) keeps source and output within a small disk:
the command works shard by shard, so its peak memory does not depend on the layer count and its time grows with the
bytes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from bench.lib.random_model import TINY_TEXT, TINY_VISION, write_checkpoint_dir
from bench.lib.report import cpu_machine

GB = 1e9


def saved_names(directory: Path) -> list[str]:
    """The tensor names `save_pretrained` writes for the model of the config in `directory` (tied ones once): a
    model of the same layers, at the tiny model's widths, saved and read back."""
    from safetensors import safe_open
    from transformers import AutoConfig, DiffusionGemmaForBlockDiffusion

    config = AutoConfig.from_pretrained(directory)
    for key, value in TINY_TEXT.items():
        if key != "num_hidden_layers":
            setattr(config.text_config, key, value)
    for key, value in TINY_VISION.items():
        if key != "num_hidden_layers":
            setattr(config.vision_config, key, value)
    with tempfile.TemporaryDirectory() as tmp:
        DiffusionGemmaForBlockDiffusion(config).save_pretrained(tmp)
        names: list[str] = []
        for file in sorted(Path(tmp).glob("*.safetensors")):
            with safe_open(str(file), framework="pt") as f:
                names.extend(f.keys())
    return names


def write_source(directory: Path, layers: int, shard_gb: float, seed: int = 0) -> dict[str, Any]:
    """A full-size checkpoint of `layers` layers with random bf16 weights, written shard by shard."""
    from accelerate import init_empty_weights
    from safetensors.torch import save_file
    from transformers import AutoConfig, DiffusionGemmaForBlockDiffusion

    write_checkpoint_dir(directory, tiny=False)
    config_file = directory / "config.json"
    saved = json.loads(config_file.read_text(encoding="utf-8"))
    text = saved["text_config"]
    text["num_hidden_layers"], text["layer_types"] = layers, text["layer_types"][:layers]
    text["per_layer_config"] = {k: v for k, v in (text.get("per_layer_config") or {}).items() if int(k) < layers}
    config_file.write_text(json.dumps(saved, indent=2), encoding="utf-8")
    config = AutoConfig.from_pretrained(directory)
    with init_empty_weights():  # parameters on the meta device, buffers real
        state = DiffusionGemmaForBlockDiffusion(config).state_dict()
    names = saved_names(directory)
    shards: list[list[str]] = [[]]
    size = 0.0
    for name in names:
        bytes_ = state[name].numel() * 2
        if shards[-1] and size + bytes_ > shard_gb * GB:
            shards.append([])
            size = 0.0
        shards[-1].append(name)
        size += bytes_
    generator = torch.Generator().manual_seed(seed)
    weight_map: dict[str, str] = {}
    started = time.perf_counter()
    for index, shard in enumerate(shards, start=1):
        file = f"model-{index:05d}-of-{len(shards):05d}.safetensors"
        tensors = {name: _random_like(state[name], generator) for name in shard}
        save_file(tensors, directory / file, metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(shard, file))
        del tensors
        print(f"  wrote {file}", file=sys.stderr)
    index_file = directory / "model.safetensors.index.json"
    index_file.write_text(json.dumps({"metadata": {}, "weight_map": weight_map}), encoding="utf-8")
    seconds = round(time.perf_counter() - started, 1)
    return {"layers": layers, "shards": len(shards), "gb": round(_size(directory) / GB, 2), "write_s": seconds}


def _random_like(template: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    if template.device.type != "meta":  # a buffer: its real value
        return template.clone().contiguous()
    out = torch.empty(template.shape, dtype=torch.bfloat16)
    return out.normal_(0, 0.02, generator=generator)


def run_quantize(source: Path, out: Path, experts: str, dense: str) -> dict[str, Any]:
    """The command in a child process: wall time, the child's peak resident memory, the output's size."""
    command = [sys.executable, "-m", "diffusion_copilot.server.cli", "quantize", str(source), str(out)]
    command += ["--weights", experts, "--dense", dense]
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
    return {
        "experts": experts,
        "dense": dense,
        "exit": child.returncode,
        "wall_s": round(wall, 1),
        "peak_rss_gb": round(usage.ru_maxrss * 1024 / GB, 2),
        "out_gb": round(_size(out) / GB, 2),
    }


LOAD = """
import sys, time
from diffusion_copilot.engine import load_checkpoint
started = time.perf_counter()
load_checkpoint(sys.argv[1], device=sys.argv[2], dtype="bfloat16", use_kernels=True)
print(time.perf_counter() - started)
"""


def time_load(directory: Path, device: str, cold: bool) -> dict[str, Any]:
    """`load_checkpoint` of a quantized checkpoint (kept quantized) in a child process: its seconds (imports
    excluded) and the child's peak resident memory. `cold` drops the files from the page cache first
    (`posix_fadvise` DONTNEED, which needs no privileges)."""
    if cold:
        os.sync()
        for file in directory.iterdir():
            fd = os.open(file, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)
    child = subprocess.Popen([sys.executable, "-c", LOAD, str(directory), device], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    seconds = child.stdout.read().strip()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
    return {
        "cold": cold,
        "exit": child.returncode,
        "load_s": round(float(seconds), 1) if child.returncode == 0 else None,
        "peak_rss_gb": round(usage.ru_maxrss * 1024 / GB, 2),
    }


def _size(directory: Path) -> int:
    return sum(f.stat().st_size for f in directory.iterdir() if f.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="a directory with room for source and output")
    parser.add_argument("--layers", type=int, default=30)
    parser.add_argument("--shard-gb", type=float, default=5.0)
    parser.add_argument("--formats", nargs="+", default=["int4", "fp8", "nvfp4"])
    parser.add_argument("--dense", default="bf16")
    parser.add_argument("--load", metavar="DEVICE", help="also time loading each output on DEVICE, cold and warm")
    parser.add_argument("--out", type=Path, default=Path("bench/results/quantize_command.json"))
    args = parser.parse_args()
    if args.layers % 6:  # the model's last layer must be a full-attention one, as every sixth is
        parser.error("--layers must be a multiple of 6")

    source = args.work / "source"
    shutil.rmtree(source, ignore_errors=True)
    written = write_source(source, args.layers, args.shard_gb)
    print(f"source: {written['layers']} layers, {written['gb']:.1f} GB in {written['shards']} shards")
    runs = []
    for fmt in args.formats:
        out = args.work / f"out-{fmt}"
        shutil.rmtree(out, ignore_errors=True)
        run = run_quantize(source, out, fmt, args.dense)
        run["source_gb_per_s"] = round(written["gb"] / run["wall_s"], 3)
        runs.append(run)
        print(
            f"{fmt:>6} (dense {args.dense}): {run['wall_s']:.0f} s, peak RSS {run['peak_rss_gb']:.2f} GB, "
            f"output {run['out_gb']:.1f} GB, exit {run['exit']}"
        )
        if args.load and run["exit"] == 0:
            run["loads"] = [time_load(out, args.load, cold) for cold in (True, False)]
            for load in run["loads"]:
                cache = "cold" if load["cold"] else "warm"
                peak = load["peak_rss_gb"]
                print(f"        load on {args.load}, {cache}: {load['load_s']} s, peak RSS {peak:.2f} GB")
        shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(source, ignore_errors=True)
    report = {"machine": cpu_machine(), "shard_gb": args.shard_gb, "source": written, "runs": runs}
    if args.load and args.load != "cpu":
        report["load_device"] = torch.cuda.get_device_name(torch.device(args.load))
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
