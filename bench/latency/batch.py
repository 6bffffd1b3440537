"""When each request of a batch gets its answer: as soon as its own job is done (`StepControl.on_result`), against
when the whole batch ends, as the engine answered before. Concurrent requests share decoder forwards, but a job
that converges at step 6 need not wait for one that runs to step 16.

    python -m bench.latency.batch [--model DIR] [--batch 8] [--rounds 10] [--out bench/results/batch_latency.json]

Each round completes `--batch` prompts together (`Engine.complete_batch`, the call the engine process makes for
the requests waiting when it is free): prefixes cut at random line starts of this repository's Python files,
canvas 32, 16 steps at most, the model's own stop. Warm-up is excluded. Prints a table and writes JSON with the
machine and the commit.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import time
from pathlib import Path

import torch

from bench.lib.report import commit, percentile
from diffusion_copilot.engine import Engine, Job, PromptParts, StepControl

ROOT = Path(__file__).resolve().parents[2]


def prompts(count: int, rng: random.Random) -> list[PromptParts]:
    """Prefixes of this repository's engine and server files, cut at a random line start past the first 10 lines."""
    files = sorted([*ROOT.glob("engine/*.py"), *ROOT.glob("server/**/*.py")])
    parts = []
    for _ in range(count):
        path = rng.choice(files)
        lines = path.read_text().splitlines(keepends=True)
        cut = rng.randrange(10, max(11, len(lines)))
        prefix, suffix = "".join(lines[:cut]), "".join(lines[cut : cut + 20])
        parts.append(PromptParts(path=str(path.relative_to(ROOT)), language="python", prefix=prefix, suffix=suffix))
    return parts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="checkpoint directory (default: the embedded default model)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--canvas", type=int, default=32)
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--out", default="bench/results/batch_latency.json")
    args = parser.parse_args()

    engine = Engine.load(args.model)
    rng = random.Random(0)
    early_ms: list[float] = []
    batch_end_ms: list[float] = []
    steps: list[int] = []
    for round_index in range(args.rounds + 1):  # round 0 warms up
        parts = prompts(args.batch, rng)
        jobs = [Job(prompt_ids=(), canvas_length=args.canvas, max_steps=args.steps, seed=i) for i in range(args.batch)]
        answered: dict[int, float] = {}

        def note(index: int, seen: dict[int, float] = answered) -> StepControl:
            return StepControl(on_result=lambda result: seen.setdefault(index, time.perf_counter()))

        controls = [note(i) for i in range(args.batch)]
        started = time.perf_counter()
        results = engine.complete_batch(parts, jobs, controls)
        ended = time.perf_counter()
        if round_index == 0:
            continue
        for i, result in enumerate(results):
            if result.error is not None:
                raise SystemExit(f"job failed: {result.error}")
            early_ms.append((answered.get(i, ended) - started) * 1000)
            batch_end_ms.append((ended - started) * 1000)
            steps.append(result.steps)

    report = {
        "benchmark": "batch_latency",
        "model": args.model or "embedded default model",
        "batch": args.batch,
        "rounds": args.rounds,
        "canvas": args.canvas,
        "max_steps": args.steps,
        "steps_mean": round(statistics.mean(steps), 2),
        "steps_min_max": [min(steps), max(steps)],
        "answer_at_job_end_ms_p50": round(statistics.median(early_ms), 1),
        "answer_at_job_end_ms_p90": round(percentile(early_ms, 0.9), 1),
        "answer_at_batch_end_ms_p50": round(statistics.median(batch_end_ms), 1),
        "answer_at_batch_end_ms_p90": round(percentile(batch_end_ms, 0.9), 1),
        "device": f"{engine.loaded.model.device}: {platform.machine()}, {torch.get_num_threads()} torch thread(s)",
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "torch": torch.__version__,
        "commit": commit(),
    }
    print(f"{args.rounds} rounds of {args.batch} requests, steps {report['steps_mean']} mean {report['steps_min_max']}")
    print(f"{'answered':<22}{'p50 ms':>10}{'p90 ms':>10}")
    for label, key in (("when its job is done", "answer_at_job_end"), ("when the batch ends", "answer_at_batch_end")):
        print(f"{label:<22}{report[key + '_ms_p50']:>10.1f}{report[key + '_ms_p90']:>10.1f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
