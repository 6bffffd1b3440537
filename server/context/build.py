"""What the model is shown for one completion: the completion mode at the cursor (with its canvas length and step
budget), prefix and suffix windows cut at syntactic boundaries, and cross-file context (cross_file.py: definitions of
symbols used near the cursor, the current file's imports, recently edited snippets). Pure: plain data in, a frozen
`CompletionContext` out; gathering stops at a hard time budget and uses whatever is ready.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from diffusion_copilot.engine import PromptParts

from .budget import ContextBudget
from .cross_file import RecentEdit, rank_recent_edits, related_definitions, render_context
from .definitions import Definition
from .mode import PLANS, CompletionMode, completion_mode
from .symbols import WorkspaceIndex
from .syntax import SyntaxTree

DEFAULT_BUDGET = ContextBudget()


@dataclass(frozen=True)
class CompletionContext:
    """Everything decided before the engine runs: the prompt parts and the canvas plan."""

    prompt: PromptParts
    mode: CompletionMode
    canvas_length: int
    max_steps: int
    cursor_byte: int
    prefix_start_byte: int  # where the prefix window starts in the document
    suffix_end_byte: int  # where the suffix window ends
    definitions: tuple[Definition, ...] = ()  # cross-file definitions in `prompt.context`
    recent: tuple[RecentEdit, ...] = ()  # recent-edit snippets in `prompt.context`
    is_complete: bool = True  # False when the time budget cut gathering short
    elapsed_ms: float = 0.0


def prefix_start(doc: SyntaxTree, cursor_byte: int, max_chars: int) -> int:
    """Where a prefix window of at most `max_chars` bytes should start: the first whole syntactic unit (a top-level
    definition, or a statement of the block that holds the cursor) inside the budget, at the start of its line."""
    limit = max(cursor_byte - max_chars, 0)
    if limit == 0:
        return 0
    source = doc.source
    boundary: int | None = None
    if doc.root is not None:
        # climb from the token at the window start to the child of the smallest unit that also holds the cursor
        node = doc.root.descendant_for_byte_range(limit, limit)
        while (
            node is not None
            and node.parent is not None
            and not (node.parent.start_byte <= limit and node.parent.end_byte > cursor_byte)
        ):
            node = node.parent
        if node is not None and node.parent is not None:
            if node.start_byte >= limit:
                boundary = node.start_byte
            elif node.end_byte <= cursor_byte:
                following = node.next_sibling
                boundary = (
                    following.start_byte if following is not None and following.start_byte < cursor_byte else None
                )
    if boundary is None:
        boundary = source.find(b"\n", limit, cursor_byte) + 1 or cursor_byte
    line_start = source.rfind(b"\n", 0, boundary) + 1
    if not source[line_start:boundary].strip() and line_start >= limit:
        return line_start
    next_line = source.find(b"\n", boundary, cursor_byte)
    return boundary if next_line < 0 else next_line + 1


def suffix_end(doc: SyntaxTree, cursor_byte: int, max_chars: int) -> int:
    """Where a suffix window of at most `max_chars` bytes should end: after the last whole line in the budget, or
    after the last whole syntactic unit when one ends there."""
    source = doc.source
    limit = min(cursor_byte + max_chars, len(source))
    if limit == len(source):
        return limit
    end = source.rfind(b"\n", cursor_byte, limit)
    return end if end > cursor_byte else limit


def build_context(
    doc: SyntaxTree,
    path: str,
    cursor_byte: int,
    index: WorkspaceIndex | None = None,
    recent: Sequence[RecentEdit] = (),
    budget: ContextBudget = DEFAULT_BUDGET,
    clock: Callable[[], float] = time.perf_counter,
) -> CompletionContext:
    """The context for a completion at `cursor_byte` of `doc` (saved at `path`); pure apart from the clock."""
    started = clock()
    deadline = started + budget.time_budget_ms / 1000
    cursor_byte = min(max(cursor_byte, 0), len(doc.source))
    mode = completion_mode(doc, cursor_byte)
    start = prefix_start(doc, cursor_byte, budget.prefix_chars)
    end = suffix_end(doc, cursor_byte, budget.suffix_chars)
    source = doc.source
    prefix = source[start:cursor_byte].decode("utf-8", errors="replace")
    suffix = source[cursor_byte:end].decode("utf-8", errors="replace")
    definitions: list[Definition] = []
    snippets: list[RecentEdit] = []
    complete = True
    if index is not None and len(index):
        if clock() < deadline:
            definitions = related_definitions(doc, path, cursor_byte, (start, end), index, budget, deadline, clock)
        complete = clock() < deadline
    if recent and clock() < deadline:
        snippets = rank_recent_edits(
            recent,
            source[max(cursor_byte - budget.near_chars, 0) : cursor_byte + 400].decode("utf-8", errors="replace"),
            budget.recent_chars,
            path,
        )
    complete = complete and clock() < deadline
    plan = PLANS[mode]
    parts = PromptParts(
        path=path,
        language=doc.language,
        prefix=prefix,
        suffix=suffix,
        context=render_context(doc.language, definitions, snippets, path),
    )
    return CompletionContext(
        prompt=parts,
        mode=mode,
        canvas_length=plan.canvas_length,
        max_steps=plan.max_steps,
        cursor_byte=cursor_byte,
        prefix_start_byte=start,
        suffix_end_byte=end,
        definitions=tuple(definitions),
        recent=tuple(snippets),
        is_complete=complete,
        elapsed_ms=(clock() - started) * 1000,
    )


def ensure_indexed(index: WorkspaceIndex, doc: SyntaxTree, path: str) -> None:
    """Index the current document with the tree the caller already has (a no-op when unchanged)."""
    tree: Any | None = doc.tree
    index.update(path, doc.language, doc.source, tree)
