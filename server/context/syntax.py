"""Syntax trees of documents: a full parse on open, an incremental re-parse for every edit, and the few tree
walks the context and post-processing stages share. Knows nothing about LSP positions (UTF-16): edits arrive in
UTF-8 bytes and (row, byte column) points.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .languages import grammar

Point = tuple[int, int]  # (row, byte column)


@dataclass(frozen=True)
class ByteEdit:
    """One text change in UTF-8 bytes: [start_byte, old_end_byte) of the old text becomes `new_text`."""

    start_byte: int
    old_end_byte: int
    new_end_byte: int
    start_point: Point
    old_end_point: Point
    new_end_point: Point
    new_text: bytes


def point_at(source: bytes, offset: int) -> Point:
    """The (row, byte column) of a byte offset."""
    row = source.count(b"\n", 0, offset)
    return row, offset - (source.rfind(b"\n", 0, offset) + 1)


def byte_edit(source: bytes, start_byte: int, old_end_byte: int, new_text: bytes) -> ByteEdit:
    """The edit replacing source[start_byte:old_end_byte] with `new_text`, with its points computed."""
    if not 0 <= start_byte <= old_end_byte <= len(source):
        raise ValueError(f"edit range [{start_byte}, {old_end_byte}) outside a text of {len(source)} bytes")
    start = point_at(source, start_byte)
    lines = new_text.count(b"\n")
    new_end = (
        (start[0] + lines, len(new_text) - new_text.rfind(b"\n") - 1) if lines else (start[0], start[1] + len(new_text))
    )
    return ByteEdit(
        start_byte, old_end_byte, start_byte + len(new_text), start, point_at(source, old_end_byte), new_end, new_text
    )


class SyntaxTree:
    """The text of one document and its tree (None for languages without a grammar), kept in step by edits."""

    def __init__(self, language: str, text: str) -> None:
        self.language = language
        self.source = text.encode("utf-8")
        lang = grammar(language)
        self._parser: Any | None = None
        self.tree: Any | None = None
        if lang is not None:
            from tree_sitter import Parser

            self._parser = Parser(lang)
            self.tree = self._parser.parse(self.source)

    @property
    def text(self) -> str:
        return self.source.decode("utf-8", errors="replace")

    @property
    def root(self) -> Any | None:
        """The root node, or None without a grammar."""
        return None if self.tree is None else self.tree.root_node

    def apply(self, edit: ByteEdit) -> None:
        """Apply one edit to the text and re-parse incrementally, reusing the unchanged subtrees."""
        self.edit(edit)
        self.reparse()

    def edit(self, edit: ByteEdit) -> None:
        """Apply one edit to the text and mark it in the tree, without parsing (`reparse` once after several)."""
        if not 0 <= edit.start_byte <= edit.old_end_byte <= len(self.source):
            raise ValueError(f"edit range [{edit.start_byte}, {edit.old_end_byte}) outside the document")
        self.source = self.source[: edit.start_byte] + edit.new_text + self.source[edit.old_end_byte :]
        if self.tree is None:
            return
        self.tree.edit(
            start_byte=edit.start_byte,
            old_end_byte=edit.old_end_byte,
            new_end_byte=edit.new_end_byte,
            start_point=edit.start_point,
            old_end_point=edit.old_end_point,
            new_end_point=edit.new_end_point,
        )

    def reparse(self) -> Any | None:
        """Parse the edited text, reusing the unchanged subtrees; the old (edited) tree, for `changed_ranges`."""
        old = self.tree
        if old is not None and self._parser is not None:
            self.tree = self._parser.parse(self.source, old)
        return old

    def replace(self, start_byte: int, old_end_byte: int, new_text: str) -> ByteEdit:
        """Replace a byte range with text (points computed here), re-parse, and return the edit applied."""
        edit = byte_edit(self.source, start_byte, old_end_byte, new_text.encode("utf-8"))
        self.apply(edit)
        return edit

    def set_text(self, text: str) -> None:
        """Replace the whole text (a full-document change): a fresh parse."""
        self.source = text.encode("utf-8")
        if self._parser is not None:
            self.tree = self._parser.parse(self.source)


def parse(language: str, source: bytes) -> Any | None:
    """A one-off tree of `source`, or None for languages without a grammar."""
    lang = grammar(language)
    if lang is None:
        return None
    from tree_sitter import Parser

    return Parser(lang).parse(source)


def enclosing_node(root: Any, offset: int) -> Any | None:
    """The smallest node that starts before byte `offset` and ends after it (the construct the offset is inside)."""
    node = root.descendant_for_byte_range(offset, offset)
    while node is not None and not (node.start_byte < offset < node.end_byte):
        node = node.parent
    return node


def has_error_near(root: Any, start: int, end: int) -> bool:
    """Whether an ERROR or MISSING node overlaps the byte range [start, end)."""
    node = root.descendant_for_byte_range(start, max(start, end - 1))
    while node is not None:
        if node.is_error or node.is_missing:
            return True
        if node.has_error and node.start_byte <= start and node.end_byte >= end:
            return _error_inside(node, start, end)
        node = node.parent
    return False


def _error_inside(node: Any, start: int, end: int) -> bool:
    stack = [node]
    while stack:
        current = stack.pop()
        if current.end_byte <= start or current.start_byte >= end or not current.has_error:
            continue
        if current.is_error or current.is_missing:
            return True
        stack.extend(current.children)
    return False
