"""Oracle truncation on real code: remove a block (a whole body, the rest of a block after a statement, or the rest
of a line) from a real file, hand post-processing the true block followed by the lines that really came after it
as the "model output", and count how often it returns exactly the block. Also times post-processing.

    .venv/bin/python -m bench.quality.postprocess [--per-kind 150] [--languages python,go]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.lib.corpus import PROJECTS, projects
from bench.lib.report import commit, percentile
from diffusion_copilot.server.completion.block_end import CLOSING_WORDS
from diffusion_copilot.server.completion.postprocess import postprocess
from diffusion_copilot.server.context.mode import completion_mode
from diffusion_copilot.server.context.syntax import SyntaxTree

BODIES = {
    "block",
    "compound_statement",
    "statement_block",
    "body_statement",
    "do_group",
    "constructor_body",
    "declaration_list",
    "class_body",
    "field_declaration_list",
}
FOLLOWING_LINES = 10
MAX_BLOCK_LINES = 30


@dataclass(frozen=True)
class Case:
    language: str
    kind: str  # body | lines | line
    path: str
    prefix: str
    middle: str
    suffix: str
    closed: str  # the middle and the line closing its block (`}`, `end`...): the answer when no suffix is known


def cases(language: str, path: Path) -> Iterator[Case]:
    """Every oracle case of one file."""
    text = path.read_text(encoding="utf-8", errors="strict")
    source = text.encode("utf-8")
    tree = SyntaxTree(language, text)
    if tree.root is None:
        return
    stack = [tree.root]
    while stack:
        node = stack.pop()
        stack.extend(node.children)
        if node.type not in BODIES:
            continue
        stmts = [c for c in node.named_children if "comment" not in c.type]
        if len(stmts) == 1 and stmts[0].type == "statement_list":  # Go
            stmts = [c for c in stmts[0].named_children if "comment" not in c.type]
        if not stmts or stmts[0].start_point[0] == node.parent.start_point[0]:
            continue
        start, end = stmts[0].start_byte, stmts[-1].end_byte
        if (
            not source[source.rfind(b"\n", 0, start) + 1 : start].isspace()
            or stmts[-1].end_point[0] - stmts[0].start_point[0] >= MAX_BLOCK_LINES
        ):
            continue
        line_end = source.find(b"\n", end)
        if source[end : line_end if line_end >= 0 else len(source)].strip():
            continue
        closer = _closer_end(node)
        yield _case(language, "body", path, source, start, end, closer)
        for stmt in stmts[:-1]:
            line_end = source.find(b"\n", stmt.end_byte)
            if stmt.end_point[0] == stmt.start_point[0] and line_end == stmt.end_byte:
                yield _case(language, "lines", path, source, stmt.end_byte, end, closer)
                break
        for stmt in stmts:
            if stmt.start_point[0] != stmt.end_point[0]:
                continue
            leaves = [leaf for leaf in _leaves(stmt) if leaf.end_byte < stmt.end_byte]
            points = [leaf for leaf in leaves if _continues(leaf)]
            if len(points) >= 2:
                leaf = points[len(points) // 2]
                yield _case(language, "line", path, source, leaf.end_byte, stmt.end_byte)
                break


def _closer_end(body: Any) -> int | None:
    """Where the token closing a body (`}`, `end`, `done`...) ends, when it sits on a line after the body."""
    for node in (body, body.parent):
        last = node.children[-1] if node is not None and node.children else None
        if last is not None and not last.is_named and last.type in CLOSING_WORDS:
            return int(last.end_byte)
    return None


def _leaves(node: Any) -> Iterator[Any]:
    if not node.children:
        yield node
    for child in node.children:
        yield from _leaves(child)


def _continues(leaf: Any) -> bool:
    """A cursor after this token is in the middle of an expression (after an operator, a dot or an open bracket)."""
    text = leaf.text.decode("utf-8", errors="replace")
    return text[-1:] in "([{,=+-*/.<>&|:" and "comment" not in leaf.type and "string" not in leaf.type


def _case(language: str, kind: str, path: Path, source: bytes, start: int, end: int, closer: int | None = None) -> Case:
    return Case(
        language,
        kind,
        str(path),
        source[:start].decode(),
        source[start:end].decode(),
        source[end:].decode(),
        source[start : closer or end].decode(),
    )


@dataclass(frozen=True)
class Outcome:
    exact: bool  # post-processing returned exactly the block
    blind_exact: bool  # the same with no suffix given: the block and its closing line
    wall_ms: float
    cpu_ms: float  # thread CPU time: the wall time without waiting for a busy machine
    rules: tuple[str, ...]
    mode: str


def run_case(case: Case) -> Outcome:
    doc = SyntaxTree(case.language, case.prefix + case.suffix)
    mode = completion_mode(doc, len(case.prefix.encode("utf-8")))
    output = case.middle + "\n".join(case.suffix.split("\n")[: FOLLOWING_LINES + 1])
    started, started_cpu = time.perf_counter(), time.thread_time()
    result = postprocess(output, case.prefix, case.suffix, case.language, mode)
    wall_ms, cpu_ms = (time.perf_counter() - started) * 1000, (time.thread_time() - started_cpu) * 1000
    blind = postprocess(output, case.prefix, "", case.language, mode)
    return Outcome(
        result.text == case.middle.rstrip(),
        blind.text == case.closed.rstrip(),
        wall_ms,
        cpu_ms,
        result.rules,
        mode.value,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-kind", type=int, default=150, help="cases per language and kind (sampled)")
    parser.add_argument("--languages", default="", help="comma-separated subset")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parents[1] / "results/postprocess_eval.json")
    parser.add_argument("--show-failures", type=int, default=0)
    args = parser.parse_args()
    wanted = set(args.languages.split(",")) if args.languages else None
    rng = random.Random(args.seed)
    by_language: dict[str, list[Case]] = {}
    for project in projects(wanted):
        for path in project.files():
            try:
                by_language.setdefault(project.language, []).extend(cases(project.language, path))
            except (UnicodeDecodeError, OSError):
                continue
    rows: dict[str, Any] = {}
    wall: list[float] = []
    cpu: list[float] = []
    failures: list[tuple[Case, str]] = []
    for found in by_language.values():  # warm-up: grammars load and queries compile on first use
        run_case(found[0])
    for language, found in sorted(by_language.items()):
        per_kind: dict[str, Any] = {}
        for kind in ("body", "lines", "line"):
            pool = [c for c in found if c.kind == kind]
            sample = rng.sample(pool, min(args.per_kind, len(pool)))
            outcomes = [run_case(case) for case in sample]
            rules: Counter[str] = Counter(r for o in outcomes for r in o.rules)
            wall += [o.wall_ms for o in outcomes]
            cpu += [o.cpu_ms for o in outcomes]
            failures += [(c, o.mode) for c, o in zip(sample, outcomes, strict=True) if not o.exact]
            per_kind[kind] = {
                "cases": len(sample),
                "exact": sum(o.exact for o in outcomes),
                "blind_exact": sum(o.blind_exact for o in outcomes),
                "rules": dict(rules),
            }
        total = sum(k["cases"] for k in per_kind.values())
        rows[language] = {
            "cases": total,
            "exact_rate": sum(k["exact"] for k in per_kind.values()) / max(total, 1),
            "blind_exact_rate": sum(k["blind_exact"] for k in per_kind.values()) / max(total, 1),
            "kinds": per_kind,
        }
    others = [r["exact_rate"] for lang, r in rows.items() if lang != "python" and r["cases"]]
    blind_others = [r["blind_exact_rate"] for lang, r in rows.items() if lang != "python" and r["cases"]]
    summary = {
        "python_exact_rate": rows.get("python", {}).get("exact_rate"),
        "others_mean_exact_rate": sum(others) / len(others) if others else None,
        "python_blind_exact_rate": rows.get("python", {}).get("blind_exact_rate"),
        "others_mean_blind_exact_rate": sum(blind_others) / len(blind_others) if blind_others else None,
        "postprocess_wall_ms": _percentiles(wall),
        "postprocess_cpu_ms": _percentiles(cpu),
        "load_average_1m": os.getloadavg()[0],
        "cases": len(wall),
    }
    print(f"{'language':<16}{'cases':>6}{'exact':>8}{'body':>8}{'lines':>8}{'line':>8}{'no-suffix':>11}")
    for language, row in rows.items():
        k = row["kinds"]
        rate = {n: k[n]["exact"] / k[n]["cases"] if k[n]["cases"] else float("nan") for n in k}
        print(
            f"{language:<16}{row['cases']:>6}{row['exact_rate']:>8.1%}{rate['body']:>8.1%}{rate['lines']:>8.1%}"
            f"{rate['line']:>8.1%}{row['blind_exact_rate']:>11.1%}"
        )
    print(
        f"exact: python {_pct(summary['python_exact_rate'])}, others mean {_pct(summary['others_mean_exact_rate'])}"
        f" (no suffix: {_pct(summary['python_blind_exact_rate'])}, {_pct(summary['others_mean_blind_exact_rate'])})"
    )
    w, c = summary["postprocess_wall_ms"], summary["postprocess_cpu_ms"]
    print(
        f"post-processing over {len(wall)} cases: wall p50 {w['p50']:.2f} ms, p99 {w['p99']:.2f} ms; "
        f"CPU p50 {c['p50']:.2f} ms, p99 {c['p99']:.2f} ms (load average {summary['load_average_1m']:.1f})"
    )
    for case, mode in failures[: args.show_failures]:
        print(
            f"--- {case.language} {case.kind} mode={mode} {case.path}\n{case.prefix[-150:]}«{case.middle}»"
            f"{case.suffix[:120]}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "benchmark": "postprocess_eval",
                "commit": commit(),
                "device": f"cpu: {platform.machine()}, {os.cpu_count()} cores",
                "seed": args.seed,
                "per_kind": args.per_kind,
                "following_lines": FOLLOWING_LINES,
                "summary": summary,
                "languages": rows,
                "corpus": [{"language": p.language, "project": p.name, "licence": p.licence} for p in PROJECTS],
            },
            indent=2,
        )
        + "\n"
    )


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": float("nan"), "p99": float("nan"), "max": float("nan")}
    return {"p50": percentile(values, 0.5), "p99": percentile(values, 0.99), "max": max(values)}


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


if __name__ == "__main__":
    main()
