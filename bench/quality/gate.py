"""Fit the acceptance gate of the default model and measure it: held-out tasks run through the language server's
own pipeline (context, engine job of an automatic request, post-processing), each finished completion labelled
accepted (exact, or parses in its file with edit similarity >= 0.8) and described by server/completion/gate.py's
features. The fit uses tasks drawn (another seed) from held-out files that no evaluation task comes from; the
evaluation uses the committed tasks (bench/data/heldout_tasks.json). CPU, 2 threads.

    python -m bench.quality.gate [--fit-tasks 300] [--eval-per-kind 240,100,100] [--rows-from gate_rows.json]

Writes models/default/gate.json, bench/results/gate.json (+ gate_rows.json, the features and labels of every
task, so a refit needs no engine) and bench/results/gate.png (precision against coverage), and prints a table.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.lib.report import commit, cpu_machine
from bench.lib.tasks import HELD_OUT_TASKS, RESULTS, Task, _files, build_heldout_tasks, score
from diffusion_copilot.engine.protocol import RunReply, run_reply_of
from diffusion_copilot.server.completion.gate import FEATURES, GATE_VERSION, gate_features
from diffusion_copilot.server.completion.inline import (
    CursorRequest,
    context_budget,
    finished_texts,
    postprocess_options,
    run_request,
    source_canvas,
    with_context,
)
from diffusion_copilot.server.settings import Settings

MODEL_GATE = Path(__file__).parents[2] / "models" / "default" / "gate.json"
L2 = 1.0  # ridge penalty on the standardized weights (not on the bias)
TARGET_PARSES = 0.95  # of shown completions, parse in their file
TARGET_LINE_EXACT = 0.50  # of shown single-line completions, exact


def fit_tasks(count: int, seed: int = 1) -> list[Task]:
    """Tasks from the held-out files that no committed evaluation task uses, drawn with other seeds (1, 2, ...)
    until there are `count`."""
    used = {spec["file"] for spec in json.loads(HELD_OUT_TASKS.read_text(encoding="utf-8"))}
    files = _files()
    specs: list[dict[str, Any]] = []
    seen: set[tuple[int, int]] = set()
    for draw in range(seed, seed + 8):
        for spec in build_heldout_tasks(draw):
            if spec["file"] not in used and (spec["file"], spec["cursor"]) not in seen:
                seen.add((spec["file"], spec["cursor"]))
                specs.append(spec)
        if len(specs) >= count:
            break
    random.Random(seed).shuffle(specs)
    tasks = []
    for n, spec in enumerate(specs[:count]):
        text = files[spec["file"]]["text"]
        tasks.append(Task(f"fit/{spec['kind']}/{n}", spec["kind"], files[spec["file"]]["path"], text[: spec["cursor"]],
                          text[spec["end"]:], text[spec["cursor"]: spec["end"]]))
    return tasks


def eval_tasks(per_kind: dict[str, int]) -> list[Task]:
    from bench.lib.tasks import heldout_tasks

    tasks = heldout_tasks()
    return [t for kind, n in per_kind.items() for t in [x for x in tasks if x.kind == kind][:n]]


def row_of(engine: Any, task: Task, settings: Settings) -> dict[str, Any]:
    """One automatic completion for `task` through the server's pipeline: its shown text, features and label."""
    budget = context_budget(engine.max_prompt_tokens, engine.chars_per_token)  # as the server sizes it
    cursor = with_context(CursorRequest(uri=task.path, path=task.path, language="python", prefix=task.prefix,
                                        suffix=task.suffix, cursor_offset=len(task.prefix), invoked=False), None,
                          budget)
    assert cursor.context is not None
    run = run_request(cursor, settings, pin_healed=False)
    started = time.perf_counter()
    result = engine.complete(run.prompt, run.job, pin_healed=run.pin_healed)
    reply: RunReply = run_reply_of(result, started, engine.decode)
    engine_ms = (time.perf_counter() - started) * 1000
    texts = finished_texts(cursor, reply, postprocess_options(False, settings.min_confidence))
    row: dict[str, Any] = {"id": task.task_id, "kind": task.kind, "mode": cursor.context.mode.value,
                           "engine_ms": round(engine_ms, 1), "text": texts[0] if texts else None}
    if not texts:
        return row
    canvas = source_canvas(texts[0], 0, reply)
    assert canvas is not None
    features_start = time.perf_counter()
    row["features"] = gate_features(canvas, reply.healed, texts[0], cursor.prefix, cursor.suffix, "python",
                                    cursor.context.mode)
    row["features_ms"] = round((time.perf_counter() - features_start) * 1000, 3)
    scored = score(task, texts[0])
    row |= scored | {"accepted": bool(scored["exact"] or (scored["parses"] and scored["edit_sim"] >= 0.8))}
    return row


def collect(tasks: list[Task], threads: int) -> list[dict[str, Any]]:
    import torch

    from diffusion_copilot.engine import Engine

    engine = Engine.load(None, device="cpu")
    torch.set_num_threads(threads)
    settings = Settings(seed=0)  # fixed sampler randomness: the rows are reproducible
    row_of(engine, tasks[0], settings)  # warm-up
    rows = []
    for n, task in enumerate(tasks):
        rows.append(row_of(engine, task, settings))
        if n % 50 == 0:
            print(f"  {n}/{len(tasks)}", flush=True)
    return rows


def entropy_ms(reps: int = 100) -> dict[str, float]:
    """What the engine's one added computation costs: the end of a block of the default model (its vocabulary),
    canvas 32 and 64, computing each token's confidence alone (before) and with its entropy (now). One thread, as
    the engine runs a model this small (two threads on a shared 2-core machine measure the other jobs)."""
    import torch

    from diffusion_copilot.engine.backends.local.block_sampler import last_step_stats
    from diffusion_copilot.engine.weights.default_model import shipped_model_dir

    directory = shipped_model_dir()
    assert directory is not None
    config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    vocab = int(config.get("text_config", config)["vocab_size"])
    torch.set_num_threads(1)
    out = {}
    for canvas in (32, 64):
        logits = torch.randn(1, canvas, vocab).to(torch.bfloat16)  # [batch, canvas, vocab] as the sampler keeps them
        argmax = logits.argmax(-1)
        for name in ("confidence_only", "confidence_and_entropy"):
            times = []
            for _ in range(reps + 1):  # the first is warm-up
                start = time.perf_counter()
                if name == "confidence_only":  # what the block's end computed before
                    torch.softmax(logits.float(), -1).gather(-1, argmax[..., None])
                else:
                    last_step_stats(logits, argmax)
                times.append((time.perf_counter() - start) * 1000)
            out[f"{name}_ms_canvas{canvas}_p50"] = round(float(np.median(times[1:])), 3)
    return out


def matrix(rows: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """[rows, features] values and [rows] labels of the rows that showed something."""
    x = np.array([[r["features"][f] for f in FEATURES] for r in rows], dtype=np.float64)
    y = np.array([float(r["accepted"]) for r in rows])
    return x, y


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = L2) -> dict[str, Any]:
    """Ridge logistic regression on standardized features by Newton's method: means, scales, weights, bias."""
    means = x.mean(axis=0)
    scales = x.std(axis=0)
    scales[scales < 1e-9] = 1.0
    z = np.hstack([np.ones((len(x), 1)), (x - means) / scales])
    w = np.zeros(z.shape[1])
    penalty = np.full(z.shape[1], l2)
    penalty[0] = 0.0
    for _ in range(50):
        p = 1 / (1 + np.exp(-z @ w))
        gradient = z.T @ (p - y) + penalty * w
        hessian = (z * (p * (1 - p))[:, None]).T @ z + np.diag(penalty)
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return {"means": means.tolist(), "scales": scales.tolist(), "bias": float(w[0]), "weights": w[1:].tolist()}


def predict(model: dict[str, Any], x: np.ndarray) -> np.ndarray:
    z = model["bias"] + ((x - np.array(model["means"])) / np.array(model["scales"])) @ np.array(model["weights"])
    return 1 / (1 + np.exp(-z))


def out_of_fold(x: np.ndarray, y: np.ndarray, folds: int = 5) -> np.ndarray:
    """Each fit row's prediction by a model fitted without its fold (for choosing the threshold honestly)."""
    order = np.random.default_rng(0).permutation(len(x))
    predicted = np.zeros(len(x))
    for k in range(folds):
        held = order[k::folds]
        kept = np.setdiff1d(order, held)
        predicted[held] = predict(fit_logistic(x[kept], y[kept]), x[held])
    return predicted


def at_threshold(rows: list[dict[str, Any]], p: dict[str, float], threshold: float, total: int) -> dict[str, Any]:
    """What the gate at `threshold` shows of `rows` (p: predicted acceptance by row id; total: all tasks, with
    those that showed nothing even ungated)."""
    shown = [r for r in rows if p[r["id"]] >= threshold]
    lines = [r for r in shown if r["kind"] == "line"]

    def share(items: list[dict[str, Any]], key: str) -> float | None:
        return round(sum(bool(r[key]) for r in items) / len(items), 4) if items else None

    return {"threshold": round(threshold, 4), "shown": len(shown), "coverage": round(len(shown) / total, 4),
            "precision": share(shown, "accepted"), "parses": share(shown, "parses"), "exact": share(shown, "exact"),
            "line_shown": len(lines), "line_exact": share(lines, "exact"),
            "by_kind": {k: sum(r["kind"] == k for r in shown) for k in ("line", "lines", "block")}}


def curve(rows: list[dict[str, Any]], p: dict[str, float], total: int) -> list[dict[str, Any]]:
    cuts = sorted({0.0, *(round(v, 4) for v in p.values())})
    return [at_threshold(rows, p, t, total) for t in cuts]


def choose_threshold(points: list[dict[str, Any]]) -> dict[str, Any]:
    """The lowest threshold (most coverage) whose shown completions meet both targets; else the one with the best
    precision among those showing at least 10."""
    for point in points:
        if point["shown"] >= 5 and (point["parses"] or 0) >= TARGET_PARSES and \
                (point["line_exact"] is None or point["line_exact"] >= TARGET_LINE_EXACT):
            return point | {"meets_targets": True}
    best = max((q for q in points if q["shown"] >= 10), key=lambda q: (q["precision"] or 0, q["shown"]))
    return best | {"meets_targets": False}


def plot(points: list[dict[str, Any]], chosen: dict[str, Any], ungated: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    shown = [q for q in points if q["shown"]]
    coverage = [q["coverage"] for q in shown]
    ax.plot(coverage, [q["precision"] for q in shown], label="accepted (exact, or parses and edit sim >= 0.8)")
    ax.plot(coverage, [q["parses"] for q in shown], label="parse in their file", linestyle="--")
    ax.plot([q["coverage"] for q in shown if q["line_exact"] is not None],
            [q["line_exact"] for q in shown if q["line_exact"] is not None], label="single-line exact", linestyle=":")
    ax.axvline(chosen["coverage"], color="grey", linewidth=0.8)
    ax.annotate(f"default threshold {chosen['threshold']:.2f}", (chosen["coverage"], 0.02), fontsize=8)
    ax.scatter([ungated["coverage"]], [ungated["precision"]], color="black", s=12, label="no gate")
    ax.set_xlabel("coverage (share of held-out tasks that show a completion)")
    ax.set_ylabel("share of shown completions")
    ax.set_ylim(0, 1.02)
    ax.set_title("Default model: acceptance gate on the evaluation tasks")
    ax.legend(fontsize=7, loc="center right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fit-tasks", type=int, default=300)
    parser.add_argument("--eval-per-kind", default="240,100,100", help="line,lines,block evaluation tasks")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rows-from", help="file under bench/results with the rows of an earlier run (no engine)")
    parser.add_argument("--eval-rows-from", help="... its evaluation rows only (the fit tasks run again)")
    args = parser.parse_args()
    started = time.perf_counter()
    if args.rows_from:
        saved = json.loads((RESULTS / args.rows_from).read_text(encoding="utf-8"))
        fit_rows, eval_rows = saved["fit"], saved["eval"]
    else:
        per_kind = dict(zip(("line", "lines", "block"), map(int, args.eval_per_kind.split(",")), strict=True))
        fit_rows = collect(fit_tasks(args.fit_tasks), args.threads)
        if args.eval_rows_from:
            eval_rows = json.loads((RESULTS / args.eval_rows_from).read_text(encoding="utf-8"))["eval"]
        else:
            eval_rows = collect(eval_tasks(per_kind), args.threads)
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "gate_rows.json").write_text(json.dumps({"fit": fit_rows, "eval": eval_rows}), encoding="utf-8")
    fit_shown = [r for r in fit_rows if r["text"] is not None]
    eval_shown = [r for r in eval_rows if r["text"] is not None]
    x, y = matrix(fit_shown)
    model = fit_logistic(x, y)
    fit_p = dict(zip((r["id"] for r in fit_shown), out_of_fold(x, y).tolist(), strict=True))
    chosen_fit = choose_threshold(curve(fit_shown, fit_p, len(fit_rows)))
    threshold = chosen_fit["threshold"]
    eval_x, _ = matrix(eval_shown)
    eval_p = dict(zip((r["id"] for r in eval_shown), predict(model, eval_x).tolist(), strict=True))
    eval_curve = curve(eval_shown, eval_p, len(eval_rows))
    at_default = at_threshold(eval_shown, eval_p, threshold, len(eval_rows))
    ungated = at_threshold(eval_shown, eval_p, 0.0, len(eval_rows))
    # the baseline: the confidence the editors show, as the only ranking, cut to show as many completions
    by_confidence = {r["id"]: r["features"]["mean_confidence"] for r in eval_shown}
    cut = sorted(by_confidence.values(), reverse=True)[max(at_default["shown"] - 1, 0)]
    confidence_only = at_threshold(eval_shown, by_confidence, cut, len(eval_rows))
    provenance = {
        "fitted_by": "bench/quality/gate.py", "commit": commit(), "date": time.strftime("%Y-%m-%d"),
        "fit_tasks": f"{len(fit_rows)} tasks (seeds 1, 2, ...) from held-out files no evaluation task uses; "
                     f"{len(fit_shown)} showed a completion, {int(y.sum())} accepted",
        "label": "exact, or parses in its file with edit similarity >= 0.8",
        "request": "automatic (1 alternative), default settings, seed 0, no deadline",
        "l2": L2, "threshold_rule": f"lowest threshold whose out-of-fold shown completions parse >= {TARGET_PARSES} "
                                    f"and single-line exact >= {TARGET_LINE_EXACT}",
        "eval_at_threshold": at_default,
    }
    gate = {"version": GATE_VERSION, "features": list(FEATURES), **model, "threshold": threshold,
            "provenance": provenance}
    MODEL_GATE.write_text(json.dumps(gate, indent=1) + "\n", encoding="utf-8")
    features_ms = [r["features_ms"] for r in eval_shown]
    engine_ms = [r["engine_ms"] for r in eval_rows]
    report = {
        "env": cpu_machine(), "threads": args.threads, "wall_s": round(time.perf_counter() - started, 1),
        "gate": gate, "fit_chosen_out_of_fold": chosen_fit, "eval_ungated": ungated, "eval_at_threshold": at_default,
        "eval_mean_confidence_same_coverage": confidence_only, "eval_curve": eval_curve,
        "latency": {"features_ms_p50": float(np.median(features_ms)),
                    "features_ms_p90": float(np.percentile(features_ms, 90)), "features_ms_max": max(features_ms),
                    "engine_ms_p50": float(np.median(engine_ms)), **entropy_ms()},
        "weights": dict(zip(FEATURES, (round(w, 3) for w in model["weights"]), strict=True)),
    }
    (RESULTS / "gate.json").write_text(json.dumps(report, indent=1), encoding="utf-8")
    plot(eval_curve, at_default, ungated, RESULTS / "gate.png")
    print(f"{'feature':16} {'weight':>7}")
    for name, weight in report["weights"].items():
        print(f"{name:16} {weight:>7.3f}")
    print(f"bias {model['bias']:.3f}; threshold {threshold:.3f} (out of fold on the fit tasks: {chosen_fit})")
    print(f"{'eval':10} {'shown':>5} {'cover':>6} {'accept':>6} {'parses':>6} {'exact':>6} {'line_ex':>7}")
    for name, point in (("no gate", ungated), ("gate", at_default), ("mean conf", confidence_only)):
        print(f"{name:10} {point['shown']:>5} {point['coverage']:>6.3f} {point['precision'] or 0:>6.3f} "
              f"{point['parses'] or 0:>6.3f} {point['exact'] or 0:>6.3f} {point['line_exact'] or 0:>7.3f}")
    print(f"features: p50 {report['latency']['features_ms_p50']:.2f} ms (engine p50 "
          f"{report['latency']['engine_ms_p50']:.0f} ms); {report['latency']}")


if __name__ == "__main__":
    main()
