"""Context gathering on real code: recall of cross-file definitions (at completion points whose removed block uses
a symbol defined in another file of the workspace, how often that definition is in the prompt), and the time
`build_context` takes on a 5,000-line file.

    .venv/bin/python -m bench.context.recall [--per-language 200]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transformers import AutoTokenizer

from bench.lib.corpus import PROJECTS, SITE, projects
from bench.lib.report import commit
from bench.quality.postprocess import Case, _pct, _percentiles, cases
from diffusion_copilot.engine import default_model_source
from diffusion_copilot.engine.prompt.chat import encode_for
from diffusion_copilot.server.context.budget import ContextBudget
from diffusion_copilot.server.context.build import build_context
from diffusion_copilot.server.context.definitions import IDENTIFIER
from diffusion_copilot.server.context.symbols import WorkspaceIndex
from diffusion_copilot.server.context.syntax import SyntaxTree

PROMPT_TOKENS = 2048
BIG_FILE = SITE / "transformers/modeling_utils.py"  # 5,306 lines, Apache-2.0
BIG_WORKSPACE = (SITE / "transformers", ("*.py", "utils/*.py", "integrations/*.py"))


@dataclass(frozen=True)
class Probe:
    case: Case
    symbols: tuple[str, ...]  # names the removed block uses that only other workspace files (at most 3) define
    unique: tuple[str, ...]  # those of them exactly one file defines (an unambiguous definition)


def probes(case_list: list[Case], index: WorkspaceIndex) -> list[Probe]:
    """Completion points whose removed block uses a name defined in another file (and not in its own)."""
    found = []
    for case in case_list:
        own = {d.name for d in index.definitions_in(case.path)}
        names = set(IDENTIFIER.findall(case.middle)) - own
        used = tuple(
            sorted(
                n
                for n in names
                if 0 < index.count_named(n) <= 3
                and len(n) > 2
                and any(d.path != case.path for d in index.definitions_named(n))
            )
        )
        if used:
            found.append(Probe(case, used, tuple(n for n in used if index.count_named(n) == 1)))
    return found


def recall(probe: Probe, index: WorkspaceIndex, budget: ContextBudget, tokenizer: Any) -> tuple[int, int, int]:
    """How many of the probe's symbols have a definition in the gathered context, how many of its unique symbols
    do, and how many of those still are once the engine has encoded the prompt (2,048 tokens)."""
    doc = SyntaxTree(probe.case.language, probe.case.prefix + probe.case.suffix)
    index.update(probe.case.path, doc.language, doc.source, doc.tree)
    context = build_context(doc, probe.case.path, len(probe.case.prefix.encode("utf-8")), index, budget=budget)
    index.remove(probe.case.path)  # the file on disk again, for the next probes: only the open one has a hole
    index.add_file(Path(probe.case.path))
    included = {d.name for d in context.definitions if d.path != probe.case.path}
    prompt = tokenizer.decode(list(encode_for(tokenizer, context.prompt, PROMPT_TOKENS).ids))
    encoded = {d.name for d in context.definitions if d.path != probe.case.path and d.signature in prompt}
    return (
        sum(n in included for n in probe.symbols),
        sum(n in included for n in probe.unique),
        sum(n in encoded for n in probe.unique),
    )


def timing(budget: ContextBudget, positions: int, rng: random.Random) -> dict[str, Any]:
    """build_context on a 5,000-line file, its workspace indexed, the tree already parsed (as the server keeps)."""
    index = WorkspaceIndex()
    root, patterns = BIG_WORKSPACE
    started = time.perf_counter()
    for pattern in patterns:
        for path in root.glob(pattern):
            index.add_file(path)
    index_s = time.perf_counter() - started
    text = BIG_FILE.read_text(encoding="utf-8")
    started = time.perf_counter()
    doc = SyntaxTree("python", text)
    parse_ms = (time.perf_counter() - started) * 1000
    middle = len(doc.source) // 2
    started = time.perf_counter()
    doc.replace(middle, middle, "x")
    reparse_ms = (time.perf_counter() - started) * 1000
    offsets = [rng.randrange(len(doc.source)) for _ in range(positions)]
    build_context(doc, str(BIG_FILE), offsets[0], index, budget=budget)  # warm-up
    wall, cpu, complete = [], [], 0
    for offset in offsets:
        t0, c0 = time.perf_counter(), time.thread_time()
        context = build_context(doc, str(BIG_FILE), offset, index, budget=budget)
        wall.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.thread_time() - c0) * 1000)
        complete += context.is_complete
    return {
        "file": str(BIG_FILE.relative_to(SITE)),
        "lines": text.count("\n"),
        "indexed_files": len(index),
        "index_s": index_s,
        "full_parse_ms": parse_ms,
        "incremental_reparse_ms": reparse_ms,
        "positions": positions,
        "complete_rate": complete / positions,
        "wall_ms": _percentiles(wall),
        "cpu_ms": _percentiles(cpu),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-language", type=int, default=200, help="probes per language (sampled)")
    parser.add_argument("--positions", type=int, default=300, help="cursor positions timed on the big file")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parents[1] / "results/context_eval.json")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    budget = ContextBudget(time_budget_ms=1000.0)  # recall without the deadline; timing below uses the default
    tokenizer = AutoTokenizer.from_pretrained(str(default_model_source()))
    tokenizer.model_max_length = PROMPT_TOKENS  # a 2,048-token prompt, whatever length the small default trained at
    rows: dict[str, Any] = {}
    for project in projects():
        index = WorkspaceIndex()
        files = project.files()
        for path in project.workspace_files():
            index.add_file(path)
        case_list: list[Case] = []
        for path in files:
            try:
                case_list += [c for c in cases(project.language, path) if c.kind in ("body", "lines")]
            except (UnicodeDecodeError, OSError):
                continue
        found = probes(case_list, index)
        sample = rng.sample(found, min(args.per_language, len(found)))
        row = rows.setdefault(
            project.language,
            {
                "probes": 0,
                "symbols": 0,
                "found": 0,
                "unique_symbols": 0,
                "unique_found": 0,
                "unique_encoded": 0,
                "projects": [],
            },
        )
        for probe in sample:
            got, got_unique, got_encoded = recall(probe, index, budget, tokenizer)
            row["found"] += got
            row["unique_found"] += got_unique
            row["unique_encoded"] += got_encoded
            row["symbols"] += len(probe.symbols)
            row["unique_symbols"] += len(probe.unique)
        row["probes"] += len(sample)
        row["projects"].append(project.name)
    for row in rows.values():
        row["recall"] = row["found"] / row["symbols"] if row["symbols"] else None
        row["unique_recall"] = row["unique_found"] / row["unique_symbols"] if row["unique_symbols"] else None
        row["unique_recall_encoded"] = row["unique_encoded"] / row["unique_symbols"] if row["unique_symbols"] else None
    symbols = sum(r["symbols"] for r in rows.values())
    overall = sum(r["found"] for r in rows.values()) / symbols if symbols else None
    unique_symbols = sum(r["unique_symbols"] for r in rows.values())
    unique = sum(r["unique_found"] for r in rows.values()) / unique_symbols if unique_symbols else None
    encoded = sum(r["unique_encoded"] for r in rows.values()) / unique_symbols if unique_symbols else None
    timed = timing(ContextBudget(), args.positions, rng)
    print(f"{'language':<16}{'probes':>8}{'unique':>8}{'recall':>9}{'encoded':>9}{'<=3 files':>11}{'recall':>9}")
    for language, row in sorted(rows.items()):
        print(
            f"{language:<16}{row['probes']:>8}{row['unique_symbols']:>8}{_pct(row['unique_recall']):>9}"
            f"{_pct(row['unique_recall_encoded']):>9}{row['symbols']:>11}{_pct(row['recall']):>9}"
        )
    print(
        f"recall: {_pct(unique)} of {unique_symbols} symbols one other file defines ({_pct(encoded)} still in the "
        f"{PROMPT_TOKENS}-token encoded prompt); {_pct(overall)} of {symbols} defined in at most 3 files"
    )
    w, c = timed["wall_ms"], timed["cpu_ms"]
    print(
        f"build_context on {timed['file']} ({timed['lines']} lines, {timed['indexed_files']} files indexed in "
        f"{timed['index_s']:.1f} s): wall p50 {w['p50']:.2f} ms, p99 {w['p99']:.2f} ms; CPU p50 {c['p50']:.2f} ms, "
        f"p99 {c['p99']:.2f} ms; complete {timed['complete_rate']:.0%} (load average {os.getloadavg()[0]:.1f})"
    )
    print(
        f"for reference: full parse {timed['full_parse_ms']:.1f} ms, incremental re-parse after one character "
        f"{timed['incremental_reparse_ms']:.1f} ms"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "benchmark": "context_eval",
                "commit": commit(),
                "device": f"cpu: {platform.machine()}, {os.cpu_count()} cores",
                "seed": args.seed,
                "budget": ContextBudget().__dict__,
                "recall": {"unique": unique, "unique_encoded": encoded, "at_most_3_files": overall, "languages": rows},
                "prompt_tokens": PROMPT_TOKENS,
                "tokenizer": str(default_model_source()),
                "timing": timed,
                "load_average_1m": os.getloadavg()[0],
                "corpus": [{"language": p.language, "project": p.name, "licence": p.licence} for p in PROJECTS]
                + [{"language": "python", "project": "transformers 5.24.0 (timing)", "licence": "Apache-2.0"}],
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
