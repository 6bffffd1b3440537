"""Default model on held-out files: single-line, multi-line and whole-block completions against two baselines
(empty completion; a random-weight checkpoint of the same shape and tokenizer), canvas 32 vs 64, and suffix in
the prompt vs pinned into the canvas tail. CPU, one thread, as the engine runs on a laptop.

    python -m bench.quality.heldout [--per-kind 60] [--steps 16] [--model DIR] [--out eval_heldout.json]

Also: with and without the cross-file context that training rendered for each file. Writes
bench/results/eval_heldout.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.lib.tasks import RESULTS, Task, complete, environment, heldout_tasks, score, summarize
from diffusion_copilot.engine import Engine
from diffusion_copilot.engine.weights.default_model import shipped_model_dir
from diffusion_copilot.server.completion.postprocess import postprocess
from diffusion_copilot.server.context.mode import CompletionMode

CANVAS = {"line": 32, "lines": 64, "block": 64}
MODES = {"line": CompletionMode.REST_OF_LINE, "lines": CompletionMode.NEXT_LINES, "block": CompletionMode.WHOLE_BODY}


def random_engine(directory: Path, model: str | None) -> Engine:
    """A checkpoint of the default model's shape and tokenizer with random weights."""
    from transformers import AutoTokenizer

    from diffusion_copilot.engine.training.train import DEFAULT_SHAPE
    from diffusion_copilot.engine.weights.tiny_checkpoint import build_model

    source = model or shipped_model_dir()
    if source is None:
        raise SystemExit("no trained default model in models/default")
    tokenizer = AutoTokenizer.from_pretrained(source)
    build_model(DEFAULT_SHAPE, tokenizer, seed=1).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return Engine.load(str(directory), device="cpu")


def run(
    engine: Engine,
    tasks: list[Task],
    steps: int,
    canvas: dict[str, int],
    suffix_mode: str = "prompt",
    with_context: bool = False,
) -> list[dict[str, Any]]:
    rows = []
    for task in tasks:
        text, ms = complete(engine, task, canvas[task.kind], steps, suffix_mode, with_context=with_context)
        row = {"id": task.task_id, "kind": task.kind, "prediction": text, "latency_ms": ms} | score(task, text)
        shown = postprocess(text, task.prefix, task.suffix, "python", MODES[task.kind]).text or ""
        row["postprocessed"] = {"kind": task.kind, "latency_ms": ms} | score(task, shown)
        rows.append(row)
    return rows


def by_kind(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    return {
        kind: summarize([r for r in rows if r["kind"] == kind])
        for kind in ("line", "lines", "block")
        if any(r["kind"] == kind for r in rows)
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--per-kind", type=int, default=60)
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--model", help="checkpoint directory (default: the shipped default model)")
    parser.add_argument("--out", default="eval_heldout.json", help="file name under bench/results")
    parser.add_argument("--only-trained", action="store_true", help="the trained model and the empty baseline only")
    parser.add_argument("--kinds", default="line,lines,block", help="task kinds to run")
    args = parser.parse_args()
    all_tasks = heldout_tasks()
    kinds = [k for k in CANVAS if k in args.kinds.split(",")]
    tasks = [t for kind in kinds for t in [x for x in all_tasks if x.kind == kind][: args.per_kind]]
    small = [t for kind in kinds for t in [x for x in all_tasks if x.kind == kind][: max(args.per_kind // 3, 1)]]
    started = time.perf_counter()
    trained = Engine.load(args.model, device="cpu")
    results: dict[str, Any] = {"env": environment(), "model": args.model or "models/default"}
    results |= {"steps": args.steps, "canvas": CANVAS}
    rows = run(trained, tasks, args.steps, CANVAS)
    results["trained"] = by_kind(rows)
    results["trained_postprocessed"] = by_kind([r["postprocessed"] for r in rows])  # what an editor would show
    results["empty"] = by_kind([{"kind": t.kind, "latency_ms": 0.0} | score(t, "") for t in tasks])
    if args.only_trained:
        _write(results, rows, started, args.out)
        return
    # cross-file context as training rendered it, on the tasks whose file has some
    with_context = [t for t in tasks if t.context]
    results["with_context"] = by_kind(run(trained, with_context, args.steps, CANVAS, with_context=True))
    results["without_context_same_tasks"] = by_kind([r for r in rows if r["id"] in {t.task_id for t in with_context}])
    pinned = run(trained, [t for t in tasks if t.kind != "lines"], args.steps, CANVAS, "pinned")
    results["suffix_pinned"] = by_kind(pinned)
    results["suffix_both"] = by_kind(run(trained, small, args.steps, CANVAS, "both"))
    results["suffix_prompt_same_tasks"] = by_kind([r for r in rows if r["id"] in {t.task_id for t in small}])
    short = run(trained, [t for t in tasks if t.kind != "line"], args.steps, dict.fromkeys(CANVAS, 32))
    results["canvas_32"] = by_kind(short)
    with tempfile.TemporaryDirectory() as scratch:
        results["random_weights"] = by_kind(run(random_engine(Path(scratch), args.model), small, args.steps, CANVAS))
        results["trained_same_tasks_as_random"] = results["suffix_prompt_same_tasks"]
    _write(results, rows, started, args.out)


def _write(results: dict[str, Any], rows: list[dict[str, Any]], started: float, name: str) -> None:
    results["samples"] = [{k: r[k] for k in ("id", "prediction", "exact")} for r in rows[::10]]
    results["wall_s"] = round(time.perf_counter() - started, 1)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / name).write_text(json.dumps(results, indent=1), encoding="utf-8")
    print(f"{'setting':32} {'kind':6} {'n':>4} {'exact':>6} {'edit_sim':>8} {'parses':>6} {'ms':>7}")
    for setting in (
        "trained",
        "trained_postprocessed",
        "with_context",
        "without_context_same_tasks",
        "empty",
        "random_weights",
        "trained_same_tasks_as_random",
        "canvas_32",
        "suffix_pinned",
        "suffix_both",
        "suffix_prompt_same_tasks",
    ):
        for kind, s in results.get(setting, {}).items():
            print(
                f"{setting:32} {kind:6} {s['n']:>4} {s['exact']:>6.3f} {s['edit_sim']:>8.3f} {s['parses']:>6.3f} "
                f"{s['latency_ms']:>7.0f}"
            )


if __name__ == "__main__":
    main()
