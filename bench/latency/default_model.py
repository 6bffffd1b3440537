"""CPU latency of one 32-token completion with the default model: prompt encoding, prefill and every denoising
step, at 4, 8 and 16 steps, on held-out single-line prompts (one warm-up completion excluded). Records the load
average, because on a shared 2-core machine other jobs move these numbers.

    python -m bench.latency.default_model [--runs 12]

Writes bench/results/eval_latency.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

from bench.lib.tasks import RESULTS, environment, heldout_tasks
from diffusion_copilot.engine import Engine, Job, PromptParts

STEPS = (4, 8, 16)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=12)
    args = parser.parse_args()
    tasks = heldout_tasks(("line",))[: args.runs]
    engine = Engine.load(None, device="cpu")
    load_before = os.getloadavg()[0]
    table: dict[int, dict[str, float]] = {}
    for steps in STEPS:
        totals, prefills, step_times, prompt_tokens = [], [], [], []
        for index, task in enumerate([tasks[0], *tasks]):
            started = time.perf_counter()
            encoded = engine.encode(PromptParts(task.path, "python", task.prefix, task.suffix))
            result = engine.run(Job(prompt_ids=encoded.ids, canvas_length=32, max_steps=steps, seed=0))
            if index == 0:
                continue  # warm-up
            totals.append((time.perf_counter() - started) * 1000)
            prefills.append(result.timings.prefill_ms)
            step_times += list(result.timings.step_ms)
            prompt_tokens.append(len(encoded.ids))
        table[steps] = {
            "total_p50_ms": round(statistics.median(totals), 1),
            "total_p90_ms": round(sorted(totals)[int(0.9 * (len(totals) - 1))], 1),
            "prefill_p50_ms": round(statistics.median(prefills), 1),
            "step_p50_ms": round(statistics.median(step_times), 1),
            "steps_run_mean": round(len(step_times) / len(totals), 2),
            "prompt_tokens_mean": round(sum(prompt_tokens) / len(prompt_tokens), 1),
        }
    result = {
        "env": environment(),
        "canvas": 32,
        "runs": len(tasks),
        "table": table,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg()[0],
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "eval_latency.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    print(f"load average {load_before:.1f} -> {result['load_average_after']:.1f}")
    print(f"{'steps':>5} {'total p50':>9} {'total p90':>9} {'prefill p50':>11} {'step p50':>8} {'prompt tok':>10}")
    for steps, row in table.items():
        print(
            f"{steps:>5} {row['total_p50_ms']:>9.0f} {row['total_p90_ms']:>9.0f} {row['prefill_p50_ms']:>11.0f} "
            f"{row['step_p50_ms']:>8.0f} {row['prompt_tokens_mean']:>10.0f}"
        )


if __name__ == "__main__":
    main()
