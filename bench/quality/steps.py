"""Default model: quality vs denoising steps (4, 8, 16, 32) on held-out single-line tasks, and the CPU latency
of one 32-token completion at each step count (prompt encoding, prefill and every step included; one warm-up
completion excluded). Plots the curve to bench/results/eval_steps.png.

    python -m bench.quality.steps [--tasks 40]

Writes bench/results/eval_steps.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from bench.lib.tasks import RESULTS, complete, environment, heldout_tasks, score, summarize
from diffusion_copilot.engine import Engine

STEPS = (4, 8, 16, 32)


def plot(curve: dict[int, dict[str, float]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = sorted(curve)
    fig, quality = plt.subplots(figsize=(6, 4))
    quality.plot(steps, [curve[s]["exact"] for s in steps], "o-", label="exact match")
    quality.plot(steps, [curve[s]["edit_sim"] for s in steps], "s-", label="edit similarity")
    quality.set_xscale("log", base=2)
    quality.set_xticks(steps, [str(s) for s in steps])
    quality.set_xlabel("max denoising steps")
    quality.set_ylabel("held-out single-line score")
    latency = quality.twinx()
    latency.plot(steps, [curve[s]["latency_p50_ms"] for s in steps], "^--", color="grey", label="CPU latency p50")
    latency.set_ylabel("ms per 32-token completion (2-core CPU, 1 thread)")
    fig.legend(loc="upper left", bbox_to_anchor=(0.12, 0.88))
    fig.tight_layout()
    fig.savefig(RESULTS / "eval_steps.png", dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=40)
    args = parser.parse_args()
    tasks = heldout_tasks(("line",))[: args.tasks]
    engine = Engine.load(None, device="cpu")
    complete(engine, tasks[0], 32, 4)  # warm-up
    curve: dict[int, dict[str, float]] = {}
    started = time.perf_counter()
    for steps in STEPS:
        rows = []
        for task in tasks:
            text, ms = complete(engine, task, 32, steps)
            rows.append({"latency_ms": ms} | score(task, text))
        latencies = sorted(r["latency_ms"] for r in rows)
        curve[steps] = summarize(rows) | {
            "latency_p50_ms": round(statistics.median(latencies), 1),
            "latency_p90_ms": round(latencies[int(0.9 * (len(latencies) - 1))], 1),
        }
    RESULTS.mkdir(exist_ok=True)
    result = {
        "env": environment(),
        "canvas": 32,
        "tasks": len(tasks),
        "curve": curve,
        "wall_s": round(time.perf_counter() - started, 1),
    }
    (RESULTS / "eval_steps.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    plot(curve)
    print(f"{'steps':>5} {'exact':>6} {'edit_sim':>8} {'parses':>6} {'p50 ms':>7} {'p90 ms':>7}")
    for steps, s in curve.items():
        print(
            f"{steps:>5} {s['exact']:>6.3f} {s['edit_sim']:>8.3f} {s['parses']:>6.3f} {s['latency_p50_ms']:>7.0f} "
            f"{s['latency_p90_ms']:>7.0f}"
        )


if __name__ == "__main__":
    main()
