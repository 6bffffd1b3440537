"""Definitions of a file after an edit, without extracting them all again: only the top-level nodes around the
edited rows are queried; the definitions before them are kept and those after them are moved by the rows the edit
added or removed. Must give exactly what `extract_definitions` gives for the whole new text.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass, replace
from typing import Any

from .definitions import Definition, extract_definitions


@dataclass(frozen=True)
class ChangedRows:
    """The rows of the new text that edits (and the re-parse) touched, and how many rows the edits added."""

    first: int
    last: int
    delta: int = 0

    def then(self, start_row: int, old_end_row: int, new_end_row: int) -> ChangedRows:
        """These rows followed by one more edit, given in the rows of the text before it."""
        delta = new_end_row - old_end_row

        def moved(row: int, inside: int) -> int:
            return row if row < start_row else row + delta if row > old_end_row else inside

        first = min(moved(self.first, start_row), start_row)
        return ChangedRows(first, max(moved(self.last, new_end_row), new_end_row), self.delta + delta)

    def including(self, first: int, last: int) -> ChangedRows:
        return ChangedRows(min(self.first, first), max(self.last, last), self.delta)


def patched_definitions(old: tuple[Definition, ...], language: str, source: bytes, tree: Any, path: str,
                        changed: ChangedRows) -> tuple[Definition, ...]:
    """The definitions of `source`, re-extracting the top-level nodes that hold `changed` rows (and one more on
    each side, and the definition under edited comments: they are its doc), and reusing the others from `old`."""
    children = tree.root_node.children
    if not children:
        return extract_definitions(language, source, path, tree)
    starts = [child.start_point[0] for child in children]
    first = max(bisect_right(starts, changed.first) - 2, 0)
    last = min(bisect_left(starts, changed.last + 1), len(children) - 1)
    while last + 1 < len(children) and "comment" in children[last].type:
        last += 1  # the definition under a block of comments: they are its doc
    # whole rows only: a node that shares a row with the region joins it
    while first > 0 and children[first - 1].end_point[0] >= children[first].start_point[0]:
        first -= 1
    while last + 1 < len(children) and children[last + 1].start_point[0] <= children[last].end_point[0]:
        last += 1
    if first == 0 and last == len(children) - 1:
        return extract_definitions(language, source, path, tree)
    start_row = 0 if first == 0 else children[first].start_point[0]
    end_row = children[-1].end_point[0] + 1 if last == len(children) - 1 else children[last + 1].start_point[0]
    start_byte = 0 if first == 0 else children[first].start_byte
    end_byte = len(source) if last == len(children) - 1 else children[last + 1].start_byte
    inside = extract_definitions(language, source, path, tree, (start_byte, end_byte))
    old_end_row = end_row - changed.delta
    before = [d for d in old if d.line < start_row]
    after = [d if not changed.delta else replace(d, line=d.line + changed.delta) for d in old if d.line >= old_end_row]
    return (*before, *inside, *after)
