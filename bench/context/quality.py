"""Exact match and edit similarity of the default model (or any checkpoint) on real completion points, with and
without cross-file context: same prefix and suffix windows, same canvas plan, same post-processing.

    .venv/bin/python -m bench.context.quality [--model DIR] [--limit 40] [--device cpu]

With the random-weight fallback model (no trained checkpoint in models/default/) the numbers are meaningless;
the JSON and the table say so.
"""

from __future__ import annotations

import argparse
import difflib
import json
import random
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.context.recall import probes
from bench.lib.corpus import projects
from bench.lib.report import commit
from bench.quality.postprocess import Case, cases
from diffusion_copilot.engine import Engine, Job
from diffusion_copilot.engine.prompt.budget import chars_per_token, prompt_token_limit
from diffusion_copilot.engine.prompt.chat import layout_for
from diffusion_copilot.server.completion.inline import context_budget
from diffusion_copilot.server.completion.postprocess import PostprocessOptions, postprocess, token_texts
from diffusion_copilot.server.context.budget import ContextBudget
from diffusion_copilot.server.context.build import build_context
from diffusion_copilot.server.context.symbols import WorkspaceIndex
from diffusion_copilot.server.context.syntax import SyntaxTree

PROMPT_TOKENS = 2048


def complete(
    engine: Engine, case: Case, index: WorkspaceIndex, cross_file: bool, seed: int, budget: ContextBudget
) -> str:
    """The post-processed completion at the case's cursor ("" when post-processing drops it)."""
    doc = SyntaxTree(case.language, case.prefix + case.suffix)
    index.update(case.path, doc.language, doc.source, doc.tree)
    context = build_context(
        doc, case.path, len(case.prefix.encode("utf-8")), index if cross_file else None, budget=budget
    )
    canvas_length = min(context.canvas_length, engine.canvas_length)
    job = Job(
        prompt_ids=(0,),
        canvas_length=canvas_length,
        max_steps=context.max_steps,
        max_canvases=max(context.canvas_length // canvas_length, 1),
        seed=seed,
    )
    result = engine.complete(context.prompt, job)
    if result.error or not result.canvases:
        return ""
    canvas = result.canvases[0]
    options = PostprocessOptions(stop_sequences=layout_for(engine.loaded.tokenizer).stop_sequences)
    processed = postprocess(
        canvas.text,
        context.prompt.prefix,
        context.prompt.suffix,
        case.language,
        context.mode,
        canvas.confidence,
        token_texts(engine.decode, canvas.token_ids),
        options,
        healed=result.healed,
    )
    return processed.text or ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="checkpoint directory or id (default: the embedded model)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--limit", type=int, default=40, help="completion points (Python, uses a cross-file symbol)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parents[1] / "results/model_context_eval.json")
    args = parser.parse_args()
    started = time.perf_counter()
    engine = Engine.load(args.model, device=args.device)
    load_s = time.perf_counter() - started
    tokenizer = engine.loaded.tokenizer  # the budget the server sizes from the engine's status
    budget = context_budget(prompt_token_limit(tokenizer, PROMPT_TOKENS), chars_per_token(tokenizer))
    rng = random.Random(args.seed)
    points: list[tuple[Case, WorkspaceIndex]] = []
    for project in projects({"python"}):
        index = WorkspaceIndex()
        for path in project.files():
            index.add_file(path)
        found = probes([c for p in project.files() for c in cases("python", p) if c.kind == "body"], index)
        points += [(probe.case, index) for probe in found]
    sample = rng.sample(points, min(args.limit, len(points)))
    rows: dict[str, Any] = {}
    for cross_file in (False, True):
        exact = similarity = 0.0
        started = time.perf_counter()
        for n, (case, index) in enumerate(sample):
            got = complete(engine, replace(case), index, cross_file, args.seed + n, budget)
            exact += got == case.middle.rstrip()
            similarity += difflib.SequenceMatcher(None, got, case.middle.rstrip()).ratio()
        name = "with_cross_file" if cross_file else "without_cross_file"
        rows[name] = {
            "exact_match": exact / max(len(sample), 1),
            "edit_similarity": similarity / max(len(sample), 1),
            "seconds": time.perf_counter() - started,
        }
    warning = "random weights: these numbers are meaningless" if engine.has_random_weights else ""
    print(
        f"model {engine.loaded.source} ({'RANDOM WEIGHTS' if engine.has_random_weights else 'trained'}), "
        f"loaded in {load_s:.1f} s; {len(sample)} Python completion points using a cross-file symbol"
    )
    print(f"{'context':<22}{'exact':>8}{'edit sim':>10}{'seconds':>9}")
    for name, row in rows.items():
        print(f"{name:<22}{row['exact_match']:>8.1%}{row['edit_similarity']:>10.3f}{row['seconds']:>9.1f}")
    if warning:
        print(warning)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "benchmark": "model_context_eval",
                "commit": commit(),
                "device": str(engine.loaded.device),
                "model": engine.loaded.source,
                "has_random_weights": engine.has_random_weights,
                "warning": warning,
                "points": len(sample),
                "load_s": load_s,
                "results": rows,
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
