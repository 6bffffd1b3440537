"""Cross-file context: which definitions of other files go into a prompt (names used near the cursor, then in the
file, the members of the classes taken, then the rest of what the file imports), which recently edited snippets,
and the code comment-headed text they become. Pure apart from the clock that bounds the search.
"""

from __future__ import annotations

import posixpath
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from .budget import ContextBudget
from .definitions import IDENTIFIER, Definition
from .languages import language_spec
from .symbols import WorkspaceIndex
from .syntax import SyntaxTree

MAX_FILE_NAMES = 400  # identifiers of the file looked up, most used first
MAX_MISSES = 20  # definitions in a row that did not fit: the budget is as good as full
FILE_HEADER_CHARS = 6  # a comment marker, a space and blank lines around each file's definitions
MIN_DEFINITION_CHARS = 16  # less room than this left: the budget is full
MAX_DOCUMENTED = 8  # the nearest names' definitions come with their docstrings; farther ones without
MAX_MEMBERS = 12  # members of one class: the first ones (constructors, main methods), not a whole trait


@dataclass(frozen=True)
class RecentEdit:
    """A snippet of text around a recent edit, in any open document."""

    path: str
    text: str


def related_definitions(
    doc: SyntaxTree,
    path: str,
    cursor: int,
    window: tuple[int, int],
    index: WorkspaceIndex,
    budget: ContextBudget,
    deadline: float,
    clock: Callable[[], float],
) -> list[Definition]:
    """Definitions ranked: names used near the cursor (the nearest with docstrings), then names used elsewhere in the
    file that imported or neighbouring files define, most used first, then the members of the classes among them,
    then the rest of what the file imports, outermost definitions first."""
    source = doc.source
    near_before = source[max(cursor - budget.near_chars, 0) : cursor].decode("utf-8", errors="replace")
    near_after = source[cursor : cursor + budget.near_chars // 3].decode("utf-8", errors="replace")
    head = source[: min(len(source), 20_000)].decode("utf-8", errors="replace")
    imported = index.imports_of(path, doc.language, head)
    reopened_in = language_spec(doc.language).reopened_in
    if reopened_in is not None:
        imported = imported + [p for p in reopened_in(index, path) if p not in imported]
    directory = posixpath.dirname(path)
    rank = {p: i for i, p in enumerate(imported)}
    first_row = source.count(b"\n", 0, window[0])
    rows = (first_row, first_row + source.count(b"\n", window[0], window[1]))
    chosen: list[Definition] = []
    seen: set[tuple[str, int, str]] = set()
    containers: list[Definition] = []  # classes, structs, modules taken: their members may come later
    files: set[str] = set()
    used = 0

    def take(definition: Definition, with_doc: bool) -> bool:
        """Add a definition if it fits; False when it does not."""
        nonlocal used
        key = (definition.path, definition.line, definition.name)
        if key in seen or (definition.path == path and rows[0] <= definition.line <= rows[1]):
            return True
        cost = (len(definition.render()) if with_doc else len(definition.signature)) + 1
        if definition.path not in files:  # the comment naming the file, as `render_context` writes it
            cost += len(_relative(definition.path, path)) + FILE_HEADER_CHARS
        if used + cost > budget.definitions_chars:
            return False
        seen.add(key)
        files.add(definition.path)
        chosen.append(definition if with_doc or not definition.doc else replace(definition, doc=""))
        used += cost
        if definition.is_container:
            containers.append(definition)
        return True

    file_rank: dict[str, int] = {}

    def order(definition: Definition) -> tuple[int, int]:
        place = file_rank.get(definition.path)
        if place is None:
            nearby = posixpath.dirname(definition.path) == directory
            place = file_rank[definition.path] = rank.get(definition.path, len(rank) + (0 if nearby else 1))
        return place, definition.line

    best_of: dict[str, Definition | None] = {}

    def best(name: str) -> Definition | None:
        if name not in best_of:
            top = min(index.definitions_named(name), key=order, default=None)
            if top is not None and order(top)[0] > len(rank) and index.count_named(name) > 3:
                top = None  # a common name defined all over the workspace, and not imported: probably not this one
            best_of[name] = top
        return best_of[name]

    for name in _by_proximity(near_before, near_after):
        if clock() >= deadline:
            return chosen
        found = best(name)
        if found is not None:
            take(found, with_doc=len(chosen) < MAX_DOCUMENTED)
    start = max(cursor - budget.file_chars // 2, 0)
    counts = Counter(IDENTIFIER.findall(source[start : start + budget.file_chars].decode("utf-8", errors="replace")))
    misses = 0
    for name, _ in counts.most_common(MAX_FILE_NAMES):
        if clock() >= deadline or misses > MAX_MISSES:
            return chosen
        found = best(name)
        if found is not None and found.path != path and (order(found)[0] <= len(rank) or index.count_named(name) <= 2):
            misses = 0 if take(found, with_doc=False) else misses + 1
    # a block that uses a class mostly calls its methods: the members of the classes taken so far, nearest first
    for container in containers:  # grows when a member is itself a class
        for member in [m for m in index.members_of(container) if _is_public(m)][:MAX_MEMBERS]:
            if clock() >= deadline or misses > MAX_MISSES:
                return chosen
            misses = 0 if take(member, with_doc=False) else misses + 1
    # then what the imported files define, outermost first (modules and classes before methods), from the files
    # whose names this one uses most, and once each
    if misses > MAX_MISSES or used + MIN_DEFINITION_CHARS > budget.definitions_chars:
        return chosen
    signatures = {d.signature for d in chosen}
    used_names = counts.keys()
    ranked = sorted(imported, key=lambda p: (-len(index.names_in(p) & used_names), rank[p]))
    outlines = [index.outline(p) for p in ranked]
    for depth in range(max((len(o) for o in outlines), default=0)):
        for outline in outlines:
            for definition in outline[depth] if depth < len(outline) else ():
                if clock() >= deadline or misses > MAX_MISSES:
                    return chosen
                if definition.signature not in signatures and (depth == 0 or _is_public(definition)):
                    signatures.add(definition.signature)
                    misses = 0 if take(definition, with_doc=False) else misses + 1
    return chosen


def _is_public(member: Definition) -> bool:
    """Whether code outside its class can call a member: not `private`, not a Python `_name` (but `__init__`)."""
    if member.name.startswith("_") and member.name != "__init__":
        return False
    return not member.signature.lstrip().startswith("private ")


def _by_proximity(before: str, after: str) -> list[str]:
    """Identifiers near the cursor, nearest first (those after the cursor count less)."""
    distance: dict[str, int] = {}
    for match in IDENTIFIER.finditer(before):
        distance[match.group()] = len(before) - match.start()
    for match in IDENTIFIER.finditer(after):
        distance.setdefault(match.group(), 3 * match.start() + 1)
    return sorted(distance, key=distance.__getitem__)


def rank_recent_edits(recent: Sequence[RecentEdit], near: str, max_chars: int, path: str = "") -> list[RecentEdit]:
    """Recent-edit snippets most like the text near the cursor (Jaccard over identifiers), within `max_chars`."""
    near_ids = set(IDENTIFIER.findall(near))
    if not near_ids:
        return []
    scored: list[tuple[float, int, RecentEdit]] = []
    for order, edit in enumerate(recent):
        ids = set(IDENTIFIER.findall(edit.text))
        if not ids or (edit.path == path and edit.text in near):
            continue
        score = len(ids & near_ids) / len(ids | near_ids)
        if score > 0.05:
            scored.append((score, -order, edit))
    chosen: list[RecentEdit] = []
    used = 0
    for _, _, edit in sorted(scored, key=lambda s: (s[0], s[1]), reverse=True):
        if used + len(edit.text) <= max_chars:
            chosen.append(edit)
            used += len(edit.text)
    return chosen


def render_context(
    language: str, definitions: Sequence[Definition], recent: Sequence[RecentEdit], current_path: str = ""
) -> str:
    """The cross-file context as code: definitions grouped by file, then recent edits, each under a comment. Files
    and definitions keep the order they come in (most relevant first): the engine cuts a long context from its end."""
    comment = language_spec(language).line_comment or "#"
    blocks: list[str] = []
    by_path: dict[str, list[Definition]] = {}
    for definition in definitions:
        by_path.setdefault(definition.path, []).append(definition)
    for file_path, defs in by_path.items():
        body = "\n".join(d.render() for d in defs)
        blocks.append(f"{comment} {_relative(file_path, current_path)}\n{body}")
    blocks += [f"{comment} recent edit in {_relative(e.path, current_path)}\n{e.text}" for e in recent]
    return "\n\n".join(blocks) + ("\n" if blocks else "")


def _relative(path: str, current_path: str) -> str:
    """How the prompt names a file: from the current file's folder (`util.py`, `../core/types.ts`); a path that
    shares no folder with it stays whole."""
    base = posixpath.dirname(current_path)
    if base and path.startswith(base + "/"):
        return path[len(base) + 1 :]
    if base.startswith("/") and path.startswith("/") and posixpath.commonpath((base, path)) != "/":
        return posixpath.relpath(path, base)
    return path
