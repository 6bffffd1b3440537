"""The language server's view of the workspace for context building: a syntax tree per open document, kept in
step with every didChange by incremental re-parsing, an index of definitions in open documents and workspace
files, and the snippets around recent edits. Plain data in, `CompletionContext` out; no LSP types here.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .budget import ContextBudget
from .build import CompletionContext, build_context
from .cross_file import RecentEdit
from .line_index import LineIndex
from .positions import column_index
from .symbol_patch import ChangedRows, patched_definitions
from .symbols import WorkspaceIndex, index_directory
from .syntax import ByteEdit, SyntaxTree

log = logging.getLogger(__name__)

RECENT_EDITS = 16
EDIT_SNIPPET_LINES = 3  # lines kept on each side of an edit
INDEX_MAX_FILES = 2000
LARGE_DOCUMENT_CHARS = 1_000_000  # larger when opened: no tree, not indexed, context from a window (protocol.md)
LARGE_DOCUMENT_WINDOW_CHARS = 32_000  # on each side of the cursor


@dataclass(frozen=True)
class TextChange:
    """One content change of a didChange: a range in the position encoding, or None for the whole text."""

    text: str
    start: tuple[int, int] | None = None  # (line, character)
    end: tuple[int, int] | None = None


class DocumentStore:
    """Syntax trees of open documents, the workspace index and recent edits. A document larger than
    LARGE_DOCUMENT_CHARS when opened keeps its text but no tree and is not indexed; its context comes from a window
    around the cursor (docs/protocol.md)."""

    def __init__(self) -> None:
        self.trees: dict[str, SyntaxTree] = {}  # of the documents that are not large
        self.large: dict[str, str] = {}  # uri → language of the documents over LARGE_DOCUMENT_CHARS when opened
        self.paths: dict[str, str] = {}
        self.lines: dict[str, LineIndex[bytes]] = {}  # each document's UTF-8 text, in blocks of lines
        self.index = WorkspaceIndex()
        self.recent: deque[RecentEdit] = deque(maxlen=RECENT_EDITS)
        self.lock = threading.Lock()  # the index is filled by a background thread

    def open(self, uri: str, path: str, language: str, text: str) -> None:
        with self.lock:
            self._open(uri, path, language, text)

    def _open(self, uri: str, path: str, language: str, text: str) -> SyntaxTree | None:
        """Store a document's text; parse and index it unless it is large. Its tree, if any."""
        self.paths[uri] = path
        if len(text) > LARGE_DOCUMENT_CHARS:
            self.trees.pop(uri, None)
            self.large[uri], self.lines[uri] = language, LineIndex(text.encode("utf-8"))
            self.index.remove(path)  # nor is its file on disk indexed
            return None
        tree = SyntaxTree(language, text)
        self.large.pop(uri, None)
        self.trees[uri], self.lines[uri] = tree, LineIndex(tree.source)
        self.index.update(path, language, tree.source, tree.tree)
        return tree

    def close(self, uri: str) -> None:
        with self.lock:
            for held in (self.trees, self.large, self.paths, self.lines):
                held.pop(uri, None)

    def text(self, uri: str) -> str | None:
        """The text of an open document as the store has it."""
        with self.lock:
            lines = self.lines.get(uri)
            return None if lines is None else lines.text().decode("utf-8", errors="replace")

    def change(self, uri: str, changes: Sequence[TextChange], encoding: str, final_text: str | None) -> None:
        """Apply a didChange incrementally; re-parse from `final_text` when a range does not fit (a large document
        comes without it: one that falls out of step is dropped until it is opened again)."""
        with self.lock:
            if uri in self.lines:
                self._apply(uri, changes, encoding, final_text)

    def _apply(self, uri: str, changes: Sequence[TextChange], encoding: str, final_text: str | None) -> None:
        tree, lines = self.trees.get(uri), self.lines[uri]
        changed: ChangedRows | None = None
        for change in changes:
            if change.start is None or change.end is None:  # the whole text: as if opened again
                language = tree.language if tree is not None else self.large[uri]
                tree, changed = self._open(uri, self.paths[uri], language, change.text), None
                lines = self.lines[uri]
                continue
            edit = byte_edit_at(lines, change, encoding)
            if edit is None and final_text is None:
                log.warning("document %s out of step after an edit; dropped until it is opened again", uri)
                for held in (self.trees, self.large, self.lines):
                    held.pop(uri, None)
                return
            if edit is None:
                break
            if tree is not None:
                tree.edit(edit)
            lines.replace(edit.start_point[0], edit.start_byte, edit.old_end_point[0], edit.old_end_byte, edit.new_text)
            (row, _), (old_row, _), (new_row, _) = edit.start_point, edit.old_end_point, edit.new_end_point
            changed = ChangedRows(row, new_row, new_row - old_row) if changed is None else changed.then(
                row, old_row, new_row)
            self._remember_edit(uri, lines, new_row)
        if tree is None:
            return  # a large document: its text is all there is
        old = tree.reparse()
        if final_text is not None and tree.text != final_text:
            log.info("document %s out of step after an edit; parsing it again", uri)
            tree, old, changed = self._open(uri, self.paths[uri], tree.language, final_text), None, None
            if tree is None:
                return
        if old is not None and changed is not None and tree.tree is not None:
            for moved in old.changed_ranges(tree.tree):  # e.g. an opened string that swallows the rest of the file
                changed = changed.including(moved.start_point[0], moved.end_point[0])
        self._index(self.paths[uri], tree, old, changed)

    def _index(self, path: str, tree: SyntaxTree, old: Any | None, changed: ChangedRows | None) -> None:
        """Index a document's definitions: only the edited part when an edit says which rows changed."""
        if old is None or changed is None or tree.tree is None:
            self.index.update(path, tree.language, tree.source, tree.tree)
            return
        rows = changed
        self.index.update(path, tree.language, tree.source, tree.tree,
                          lambda known: patched_definitions(known, tree.language, tree.source, tree.tree, path, rows))

    def _remember_edit(self, uri: str, lines: LineIndex[bytes], line: int) -> None:
        first, last = max(line - EDIT_SNIPPET_LINES, 0), min(line + EDIT_SNIPPET_LINES, lines.line_count - 1)
        text = b"".join(lines.line_text(row) or b"" for row in range(first, last + 1))
        snippet = text.decode("utf-8", errors="replace").rstrip("\n").strip()
        if not snippet:
            return
        path = self.paths[uri]
        if self.recent and self.recent[-1].path == path and self.recent[-1].text in snippet + "\n":
            self.recent.pop()  # typing on the same lines: keep only the newest snippet
        self.recent.append(RecentEdit(path=path, text=snippet))

    def index_workspace(self, root: Path) -> None:
        """Index the workspace's source files in a background thread; completions use what is ready."""

        def work() -> None:
            index = WorkspaceIndex()
            count = index_directory(index, root, INDEX_MAX_FILES)
            with self.lock:
                for uri, tree in self.trees.items():  # open documents are newer than their files
                    index.update(self.paths[uri], tree.language, tree.source, tree.tree)
                for uri in self.large:
                    index.remove(self.paths[uri])
                self.index = index
            log.info("indexed %d files under %s", count, root)

        threading.Thread(target=work, name="workspace-index", daemon=True).start()

    def context(
        self, uri: str, path: str, language: str, prefix: str, suffix: str, budget: ContextBudget | None = None
    ) -> CompletionContext:
        """The completion context for a cursor between `prefix` and `suffix` of a document."""
        if len(prefix) + len(suffix) > LARGE_DOCUMENT_CHARS:
            prefix, suffix = window(prefix, suffix, LARGE_DOCUMENT_WINDOW_CHARS)
        with self.lock:
            tree = self.trees.get(uri)
            if tree is None or tree.text != prefix + suffix:  # changed by a selected completion, unknown, or large
                tree = SyntaxTree(language, prefix + suffix)  # (then the window around the cursor)
            return build_context(
                tree,
                path,
                len(prefix.encode("utf-8")),
                self.index,
                [e for e in self.recent if e.path != path or e.text not in prefix[-2000:]],
                budget or ContextBudget(),
            )


def window(prefix: str, suffix: str, chars: int) -> tuple[str, str]:
    """The whole lines of at most `chars` characters on each side of the cursor (its own line always whole)."""
    head, tail = prefix[-chars:], suffix[:chars]
    if len(head) < len(prefix):
        head = head[head.find("\n") + 1 :] if "\n" in head else head
    if len(tail) < len(suffix):
        tail = tail[: tail.rfind("\n") + 1] if "\n" in tail else tail
    return head, tail


def byte_edit_at(lines: LineIndex[bytes], change: TextChange, encoding: str) -> ByteEdit | None:
    """The byte edit of a ranged change (positions in `encoding`) of the text `lines` holds; None when a position
    lies outside the text or the range is reversed."""
    assert change.start is not None and change.end is not None
    ends: list[tuple[int, int, int]] = []  # (row, byte offset, byte column)
    for row, character in (change.start, change.end):
        span = lines.span(row) if row >= 0 and character >= 0 else None
        raw = lines.line_text(row) if span is not None else None
        if span is None or raw is None:
            return None
        line = raw.decode("utf-8", errors="replace")
        column = len(line[: column_index(line, character, encoding)].encode("utf-8"))
        ends.append((row, span[0] + column, column))
    (start_row, start, start_column), (end_row, end, end_column) = ends
    if start > end:
        return None
    new = change.text.encode("utf-8")
    breaks = new.count(b"\n")
    new_end = (start_row + breaks, len(new) - new.rfind(b"\n") - 1) if breaks else (start_row, start_column + len(new))
    return ByteEdit(start, end, start + len(new), (start_row, start_column), (end_row, end_column), new_end, new)
