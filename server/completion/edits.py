"""Next-edit suggestions as plain data: the editable window around a cursor, the recent edit as a compact diff, the
minimal edits between a window and its rewrite, and the gates that make "no change" the common answer.
Pure functions only: no engine, no LSP, no I/O (next_edit.py runs the flow).
"""

from __future__ import annotations

import difflib
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from diffusion_copilot.engine.prompt.edit import Window

STOP_MARKS = ("<turn|>",)  # the chat layout's reply ends at its closing fence or its turn's end
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
TOKEN = re.compile(r"\w+|[ \t]+|\n|.", re.DOTALL)  # what minimal edits are made of
MAX_CHANGED_SHARE = 0.5  # a rewrite that changes more of the window than this is not an edit


@dataclass(frozen=True)
class TextEdit:
    """Replace the document's characters [start, end) (code points) with `text`."""

    start: int
    end: int
    text: str


def diff_words(diff: str) -> tuple[frozenset[str], frozenset[str]]:
    """(identifiers the diff removed, identifiers it added): those whose count differs between its - and + lines."""
    removed: Counter[str] = Counter()
    added: Counter[str] = Counter()
    for line in diff.splitlines():
        if line.startswith("-"):
            removed.update(IDENTIFIER.findall(line[1:]))
        elif line.startswith("+"):
            added.update(IDENTIFIER.findall(line[1:]))
    return frozenset((removed - added).keys()), frozenset((added - removed).keys())


def rewritten_window(canvas_text: str) -> str:
    """The rewritten window in a canvas's text: up to a line that opens a code fence, or a chat turn's end."""
    cut = len(canvas_text)
    for mark in STOP_MARKS:
        found = canvas_text.find(mark)
        if found >= 0:
            cut = min(cut, found)
    fence = re.search(r"(?m)^```", canvas_text)
    if fence is not None:
        cut = min(cut, fence.start())
    return canvas_text[:cut]


def minimal_edits(old: str, new: str, offset: int = 0) -> tuple[TextEdit, ...]:
    """The fewest, smallest edits that turn `old` into `new`: changed line runs, and within each the runs of changed
    tokens (identifiers, numbers, whitespace, single symbols); positions in the document, where `old` starts at
    `offset`."""
    old_lines, new_lines = old.splitlines(keepends=True), new.splitlines(keepends=True)
    old_starts, new_starts = _starts(old_lines), _starts(new_lines)
    edits: list[TextEdit] = []
    matcher = difflib.SequenceMatcher(a=old_lines, b=new_lines, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag != "equal":
            edits += _token_edits(old[old_starts[i1]:old_starts[i2]], new[new_starts[j1]:new_starts[j2]],
                                  offset + old_starts[i1])
    return tuple(edits)


def _token_edits(old: str, new: str, offset: int) -> list[TextEdit]:
    """The edits between two runs of lines, token by token."""
    old_tokens, new_tokens = TOKEN.findall(old), TOKEN.findall(new)
    old_starts, new_starts = _starts(old_tokens), _starts(new_tokens)
    matcher = difflib.SequenceMatcher(a=old_tokens, b=new_tokens, autojunk=False)
    return [
        TextEdit(offset + old_starts[i1], offset + old_starts[i2], new[new_starts[j1]:new_starts[j2]])
        for tag, i1, i2, j1, j2 in matcher.get_opcodes()
        if tag != "equal"
    ]


def changed_share(edits: Sequence[TextEdit], old: str) -> float:
    """How much of `old` the edits touch: characters replaced or inserted over its length."""
    touched = sum(max(e.end - e.start, len(e.text)) for e in edits)
    return touched / max(len(old), 1)


def is_related(edit: TextEdit, old_text: str, removed: frozenset[str], added: frozenset[str]) -> bool:
    """Whether an edit follows from the recent one: it touches an identifier the recent edit removed or added,
    and does not simply undo it (put back what was removed in place of what was added)."""
    taken = set(IDENTIFIER.findall(old_text))
    put = set(IDENTIFIER.findall(edit.text))
    if not (taken | put) & (removed | added):
        return False
    is_undo = bool(put) and put <= removed and bool(taken & added)
    return not is_undo


def accepted_edits(
    edits: Sequence[TextEdit],
    document: str,
    window: Window,
    recent_diff: str,
    confidence: float,
    min_confidence: float,
    max_changed_share: float = MAX_CHANGED_SHARE,
) -> tuple[TextEdit, ...]:
    """The edits worth showing, or () for none: only with a recent edit, a rewrite whose mean probability
    `confidence` reaches `min_confidence` (the setting `nextEdit.minConfidence`), a change small next to the window,
    and every edit related to the recent edit (`is_related`)."""
    if not edits or not recent_diff.strip() or confidence < min_confidence:
        return ()
    if changed_share(edits, document[window.start:window.end]) > max_changed_share:
        return ()
    removed, added = diff_words(recent_diff)
    if not all(is_related(e, _expanded(document, e), removed, added) for e in edits):
        return ()
    return tuple(edits)


def applied(document: str, edits: Sequence[TextEdit]) -> str:
    """`document` with `edits` (not overlapping) applied."""
    for edit in sorted(edits, key=lambda e: e.start, reverse=True):
        document = document[:edit.start] + edit.text + document[edit.end:]
    return document


def _expanded(document: str, edit: TextEdit) -> str:
    """The replaced text widened to whole identifiers at both ends (an edit trimmed to `xs` inside `xs_total`)."""
    start, end = edit.start, edit.end
    while start > 0 and (document[start - 1].isalnum() or document[start - 1] == "_"):
        start -= 1
    while end < len(document) and (document[end].isalnum() or document[end] == "_"):
        end += 1
    return document[start:end]


def _starts(lines: list[str]) -> list[int]:
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))
    return starts
