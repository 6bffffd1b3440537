"""Default model on held-out synthetic next-edit tasks (engine/training/edits.py): each task runs through the
language server's own next-edit flow, `NextEditor.suggest` (window, edit job, minimal edits, no-change gates), on
an in-process engine loaded the way the engine process loads it; a completion job of the same canvas and prompt
gives the latency to compare. CPU, the request of an invoked suggestion (no debounce, no deadline), seed 0.

    python -m bench.quality.edits [--tasks 200] [--latency-tasks 20] [--model DIR] [--out eval_edits.json]

Per kind: exact (the document after the suggested edits is the expected one), left alone (no edit suggested),
edit similarity (difflib ratio of the suggested change's diff to the expected one's: 1 when both are empty), the
same for the model's raw rewrite before the gates, and whether the server's window covered every expected site.
Writes bench/results/eval_edits.json and prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import difflib
import json
import time
from typing import Any

from bench.lib.report import cpu_machine, percentile
from bench.lib.tasks import RESULTS, _files
from diffusion_copilot.engine.backends import Backend, BackendConfig, create_backend
from diffusion_copilot.engine.job import Job
from diffusion_copilot.engine.prompt.edit import EDIT_CANVAS_TOKENS, compact_diff, edit_window, window_chars
from diffusion_copilot.engine.protocol import EngineState, EngineStatus, RunReply, RunRequest, run_reply_of
from diffusion_copilot.engine.training.edits import EditKind, EditTask, sample_edit_tasks
from diffusion_copilot.server.completion.edits import applied, minimal_edits, rewritten_window
from diffusion_copilot.server.completion.next_edit import EditRequest, NextEditor, edit_run_request
from diffusion_copilot.server.settings import Settings


class InProcessClient:
    """What `NextEditor.suggest` needs of an `EngineClient`, answered by a backend in this process as the engine
    process answers a `run` request (`engine.service.batches`); keeps the last reply and its time."""

    def __init__(self, engine: Backend) -> None:
        self.engine = engine
        self.status = EngineStatus(EngineState.READY, "ready", chars_per_token=engine.chars_per_token,
                                   has_random_weights=engine.has_random_weights,
                                   max_prompt_tokens=engine.max_prompt_tokens)
        self.is_connected = True
        self.last: RunReply | None = None
        self.last_ms = 0.0

    def ensure_connecting(self) -> None:
        pass

    async def run(self, request: RunRequest) -> RunReply:
        started = time.perf_counter()
        result = self.engine.complete_batch([request.prompt], [request.job], pin_healed=[request.pin_healed],
                                            edits=[request.edit])[0]
        self.last_ms = (time.perf_counter() - started) * 1000
        self.last = run_reply_of(result, started, self.engine.decode)
        return self.last


def change_similarity(document: str, predicted: str, expected: str) -> float:
    """How alike the predicted change is to the expected one: difflib ratio of their diffs (1.0 when both empty)."""
    a, b = compact_diff(document, predicted, 0), compact_diff(document, expected, 0)
    return 1.0 if a == b else difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()


def row_of(task_id: str, path: str, task: EditTask, client: InProcessClient, settings: Settings) -> dict[str, Any]:
    """One task through `NextEditor.suggest`, scored after the gates and on the raw rewrite."""
    document = task.document
    request = EditRequest(uri=path, path=path, language="python", text=document, cursor_offset=task.cursor,
                          recent_diff=compact_diff(task.before, document), invoked=True)
    client.last = None
    answer = asyncio.run(NextEditor(lambda error: None).suggest(request, settings, client, lambda: True))
    edits = answer.edits if answer is not None else ()
    predicted = applied(document, edits)
    expected = task.expected_document
    window = edit_window(document, task.cursor, window_chars(EDIT_CANVAS_TOKENS, client.status.chars_per_token))
    raw = document
    if client.last is not None and client.last.canvases and client.last.canvases[0].completion is not None:
        new = rewritten_window(client.last.canvases[0].completion)
        raw = applied(document, minimal_edits(document[window.start:window.end], new, window.start))
    return {
        "id": task_id, "kind": str(task.kind), "detail": task.detail,
        "exact": predicted == expected, "left_alone": not edits,
        "edit_sim": round(change_similarity(document, predicted, expected), 4),
        "raw_exact": raw == expected, "raw_left_alone": raw == document,
        "raw_edit_sim": round(change_similarity(document, raw, expected), 4),
        "covered": window.start <= task.window_start and task.window_end <= window.end,
        "engine_ms": round(client.last_ms, 1), "steps": client.last.steps if client.last is not None else None,
        "suggested": compact_diff(document, predicted, 0), "expected": compact_diff(document, expected, 0),
    }


def completion_ms(engine: Backend, task: EditTask, settings: Settings, client: InProcessClient) -> tuple[float, int]:
    """A completion job of the edit job's canvas on the same prompt (the text around the window), as the engine
    process runs it."""
    window = edit_window(task.document, task.cursor, window_chars(EDIT_CANVAS_TOKENS, client.status.chars_per_token))
    request = EditRequest("t", "t.py", "python", task.document, task.cursor, "x", True)
    prompt = edit_run_request(request, window, settings).prompt
    started = time.perf_counter()
    result = engine.complete_batch([prompt], [Job(prompt_ids=(), canvas_length=EDIT_CANVAS_TOKENS,
                                                  max_steps=settings.max_steps, seed=settings.seed)])[0]
    return (time.perf_counter() - started) * 1000, result.steps


def summary(rows: list[dict[str, Any]]) -> dict[str, float]:
    keys = ("exact", "left_alone", "edit_sim", "raw_exact", "raw_left_alone", "raw_edit_sim", "covered")
    out: dict[str, float] = {k: round(sum(float(r[k]) for r in rows) / len(rows), 4) for k in keys}
    out["engine_p50_ms"] = percentile([r["engine_ms"] for r in rows], 0.5)
    return out | {"n": len(rows)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=200, help="tasks in all, split evenly over the kinds")
    parser.add_argument("--latency-tasks", type=int, default=20, help="tasks also timed as a completion")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", help="checkpoint directory (default: the shipped default model)")
    parser.add_argument("--out", default="eval_edits.json", help="file name under bench/results")
    args = parser.parse_args()
    started = time.perf_counter()
    engine = create_backend(BackendConfig(model=args.model, device="cpu"))
    client = InProcessClient(engine)
    settings = Settings(seed=0)
    server_window = window_chars(EDIT_CANVAS_TOKENS, engine.chars_per_token)
    files = _files()
    per_kind = max(args.tasks // len(EditKind), 1)
    # half the server's window: centred on the cursor, the server's window then holds every site
    tasks = sample_edit_tasks([f["text"] for f in files], per_kind, args.seed, server_window // 2)
    load_s = time.perf_counter() - started
    warm = time.perf_counter()
    row_of("warm-up", "w.py", tasks[0][1], client, settings)
    completion_ms(engine, tasks[0][1], settings, client)
    warm_s = time.perf_counter() - warm
    order = sorted(range(len(tasks)), key=lambda i: (i % per_kind, i))  # kinds interleaved: a cut run stays even
    rows = []
    for n in order:
        index, task = tasks[n]
        rows.append(row_of(f"edits/{task.kind}/{n}", files[index]["path"], task, client, settings))
    timed = [(r, tasks[n][1]) for r, n in zip(rows, order, strict=True)][: args.latency_tasks]
    timings = [(r["engine_ms"], r["steps"], *completion_ms(engine, t, settings, client)) for r, t in timed]
    pairs = [(e, c) for e, _, c, _ in timings]
    kinds = [str(k) for k in EditKind]
    results: dict[str, Any] = cpu_machine() | {
        "model": args.model or "models/default", "seed": args.seed, "canvas": EDIT_CANVAS_TOKENS,
        "max_steps": settings.max_steps, "server_window_chars": server_window, "task_window_chars": server_window // 2,
        "min_confidence": settings.next_edit_min_confidence, "load_s": round(load_s, 1),
        "warm_up_s": round(warm_s, 1),
        "by_kind": {k: summary([r for r in rows if r["kind"] == k]) for k in kinds
                    if any(r["kind"] == k for r in rows)},
        "all": summary(rows),
        "latency": {"n": len(pairs), "edit_p50_ms": percentile([e for e, _ in pairs], 0.5) if pairs else None,
                    "completion_p50_ms": percentile([c for _, c in pairs], 0.5) if pairs else None,
                    "edit_steps_mean": sum(t[1] or 0 for t in timings) / max(len(timings), 1),
                    "completion_steps_mean": sum(t[3] for t in timings) / max(len(timings), 1)},
        "rows": rows,
        "wall_s": round(time.perf_counter() - started, 1),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / args.out).write_text(json.dumps(results, indent=1), encoding="utf-8")
    print(f"{'kind':10} {'n':>4} {'exact':>6} {'alone':>6} {'sim':>5} {'raw ex':>6} {'raw al':>6} {'raw sim':>7} "
          f"{'cover':>5} {'ms p50':>7}")
    for kind, s in [*results["by_kind"].items(), ("all", results["all"])]:
        print(f"{kind:10} {s['n']:>4} {s['exact']:>6.3f} {s['left_alone']:>6.3f} {s['edit_sim']:>5.2f} "
              f"{s['raw_exact']:>6.3f} {s['raw_left_alone']:>6.3f} {s['raw_edit_sim']:>7.2f} {s['covered']:>5.2f} "
              f"{s['engine_p50_ms']:>7.0f}")
    lat = results["latency"]
    if pairs:
        ratio = lat["edit_p50_ms"] / lat["completion_p50_ms"]
        print(f"latency, canvas {EDIT_CANVAS_TOKENS}, {lat['n']} tasks: edit job p50 {lat['edit_p50_ms']:.0f} ms, "
              f"completion p50 {lat['completion_p50_ms']:.0f} ms, ratio {ratio:.2f}; "
              f"steps run {lat['edit_steps_mean']:.1f} vs {lat['completion_steps_mean']:.1f}")
    print(f"load {load_s:.1f} s, warm-up {warm_s:.1f} s (excluded), load average {results['load_average_1m_at_end']}")


if __name__ == "__main__":
    main()
