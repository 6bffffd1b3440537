"""CPU latency of one completion on a tiny DiffusionGemma checkpoint: a 32-token canvas at 8 steps.

Usage: python -m bench.latency.cpu [--model DIR] [--runs 20] [--threads N] [--fused-norms]. Warm-up is excluded;
prints a table and writes bench/results/cpu_latency.json with the machine, the load average and the commit.
`--threads` overrides the thread count the engine picks at load (one for a small model); `--fused-norms` turns on
the one-kernel RMSNorm the engine uses on a GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from bench.lib.report import commit, percentile
from diffusion_copilot.engine import Engine, EngineOptions, Job, PromptParts
from diffusion_copilot.engine.weights.tiny_checkpoint import build_random_checkpoint

PREFIX = (
    'import os\n\n\ndef read_config(path: str) -> dict:\n    """Read a JSON config file."""\n'
    "    with open(path) as f:\n"
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", help="checkpoint directory (default: a random tiny one built now)")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--canvas", type=int, default=32)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--threads", type=int, help="torch threads after load (default: what the engine picks)")
    parser.add_argument("--fused-norms", action="store_true")
    parser.add_argument("--compile-layers", action="store_true", help="torch.compile the text layers (Inductor)")
    parser.add_argument("--out", default="bench/results/cpu_latency.json")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        source = args.model or str(build_random_checkpoint(Path(scratch) / "tiny"))
        started = time.perf_counter()
        options = EngineOptions(fused_norms=args.fused_norms or None, compile_layers=args.compile_layers)
        engine = Engine.load(source, device="cpu", options=options)
        load_s = time.perf_counter() - started
        if args.threads:
            torch.set_num_threads(args.threads)
        load_before = os.getloadavg()
        parts = PromptParts(path="config.py", language="python", prefix=PREFIX, suffix="\n")
        job = Job(prompt_ids=(), canvas_length=args.canvas, max_steps=args.steps)
        started = time.perf_counter()
        engine.complete(parts, Job(prompt_ids=(), canvas_length=args.canvas, max_steps=args.steps, seed=0))
        first_s = time.perf_counter() - started  # compiles, with --compile-layers
        for seed in range(1, 3):  # warm-up
            engine.complete(parts, Job(prompt_ids=(), canvas_length=args.canvas, max_steps=args.steps, seed=seed))
        totals, steps, prefill = [], [], []
        for seed in range(args.runs):
            result = engine.complete(parts, Job(**{**job.__dict__, "seed": 100 + seed}))
            totals.append(result.timings.total_ms)
            steps.append(statistics.mean(result.timings.step_ms))
            prefill.append(result.timings.prefill_ms)

    params = sum(p.numel() for p in engine.loaded.model.parameters())
    report = {
        "benchmark": "cpu_latency",
        "model": args.model or "random tiny (TinyShape defaults)",
        "parameters": params,
        "canvas": args.canvas,
        "steps": args.steps,
        "runs": args.runs,
        "prompt_tokens": result.timings.prefill_tokens,
        "load_s": round(load_s, 3),
        "first_completion_s": round(first_s, 3),
        "total_ms_p50": round(statistics.median(totals), 2),
        "total_ms_p90": round(percentile(totals, 0.9), 2),
        "prefill_ms_p50": round(statistics.median(prefill), 2),
        "step_ms_p50": round(statistics.median(steps), 2),
        "total_ms_min": round(min(totals), 2),
        "total_ms_max": round(max(totals), 2),
        "fused_norms": args.fused_norms,
        "compile_layers": args.compile_layers,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "device": f"cpu: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch thread(s)",
        "torch": torch.__version__,
        "commit": commit(),
    }
    print(f"{'canvas':>6} {'steps':>5} {'params':>10} {'total p50':>10} {'total p90':>10} {'step p50':>9}")
    print(
        f"{args.canvas:>6} {args.steps:>5} {params:>10,} {report['total_ms_p50']:>8.1f}ms "
        f"{report['total_ms_p90']:>8.1f}ms {report['step_ms_p50']:>7.2f}ms"
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
