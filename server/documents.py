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

from .context import CompletionContext, ContextBudget, RecentEdit, build_context
from .positions import offset_at
from .symbols import WorkspaceIndex, index_directory
from .syntax import SyntaxTree

log = logging.getLogger(__name__)

RECENT_EDITS = 16
EDIT_SNIPPET_LINES = 3  # lines kept on each side of an edit
INDEX_MAX_FILES = 2000


@dataclass(frozen=True)
class TextChange:
    """One content change of a didChange: a range in the position encoding, or None for the whole text."""

    text: str
    start: tuple[int, int] | None = None  # (line, character)
    end: tuple[int, int] | None = None


class DocumentStore:
    """Syntax trees of open documents, the workspace index and recent edits."""

    def __init__(self) -> None:
        self.trees: dict[str, SyntaxTree] = {}
        self.paths: dict[str, str] = {}
        self.index = WorkspaceIndex()
        self.recent: deque[RecentEdit] = deque(maxlen=RECENT_EDITS)
        self.lock = threading.Lock()  # the index is filled by a background thread

    def open(self, uri: str, path: str, language: str, text: str) -> None:
        tree = SyntaxTree(language, text)
        with self.lock:
            self.trees[uri], self.paths[uri] = tree, path
            self.index.update(path, language, tree.source, tree.tree)

    def close(self, uri: str) -> None:
        with self.lock:
            self.trees.pop(uri, None)
            self.paths.pop(uri, None)

    def change(self, uri: str, changes: Sequence[TextChange], encoding: str, final_text: str) -> None:
        """Apply a didChange incrementally; re-parse from `final_text` when a range does not fit."""
        tree = self.trees.get(uri)
        if tree is None:
            return
        with self.lock:
            self._apply(uri, tree, changes, encoding, final_text)

    def _apply(self, uri: str, tree: SyntaxTree, changes: Sequence[TextChange], encoding: str, final_text: str) -> None:
        for change in changes:
            if change.start is None or change.end is None:
                tree.set_text(change.text)
                continue
            text = tree.text
            start = offset_at(text, *change.start, encoding)
            end = offset_at(text, *change.end, encoding)
            if start is None or end is None or start > end:
                break
            start_byte = len(text[:start].encode("utf-8"))
            tree.replace(start_byte, start_byte + len(text[start:end].encode("utf-8")), change.text)
            self._remember_edit(uri, tree.text, start + len(change.text))
        if tree.text != final_text:
            log.info("document %s out of step after an edit; parsing it again", uri)
            tree.set_text(final_text)
        self.index.update(self.paths[uri], tree.language, tree.source, tree.tree)

    def _remember_edit(self, uri: str, text: str, offset: int) -> None:
        lines = text.split("\n")
        line = text.count("\n", 0, offset)
        snippet = "\n".join(lines[max(line - EDIT_SNIPPET_LINES, 0) : line + EDIT_SNIPPET_LINES + 1]).strip()
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
                self.index = index
            log.info("indexed %d files under %s", count, root)

        threading.Thread(target=work, name="workspace-index", daemon=True).start()

    def context(
        self, uri: str, path: str, language: str, prefix: str, suffix: str, budget: ContextBudget | None = None
    ) -> CompletionContext:
        """The completion context for a cursor between `prefix` and `suffix` of a document."""
        with self.lock:
            tree = self.trees.get(uri)
            if tree is None or tree.text != prefix + suffix:  # a selected completion changed the text, or unknown
                tree = SyntaxTree(language, prefix + suffix)
            return build_context(
                tree,
                path,
                len(prefix.encode("utf-8")),
                self.index,
                [e for e in self.recent if e.path != path or e.text not in prefix[-2000:]],
                budget or ContextBudget(),
            )
