"""pygls' text document with its line starts kept in step with every edit, so that an incremental change and a
position lookup cost the lines they touch (pygls' own splits and joins the whole text on every keystroke: 180 ms
for a 10 MB file, on the event loop), and the workspace that makes such documents.
"""

from __future__ import annotations

from typing import Any

from lsprotocol import types as t
from pygls.workspace import TextDocument, Workspace

from .line_index import LineIndex
from .positions import column_index


class IndexedDocument(TextDocument):
    """A pygls document kept as a rope of line blocks: an incremental change edits the blocks it touches, and the
    whole text is joined again only when something reads `source`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._rope: LineIndex[str] | None = None

    @property
    def line_index(self) -> LineIndex[str]:
        if self._rope is None:
            self._rope = LineIndex(self.source)
        return self._rope

    @property
    def source(self) -> str:
        if self._source is None and self._rope is not None:
            self._source = self._rope.text()
        return str(super().source)

    @property
    def length(self) -> int:
        """The length of the text in code points, without joining it."""
        return self.line_index.text_length

    @property
    def encoding(self) -> str:
        """The negotiated position encoding, by its protocol name."""
        kind = self.position_codec.encoding
        return str(kind.value) if isinstance(kind, t.PositionEncodingKind) else str(kind or "utf-16")

    def offset_at(self, line: int, character: int) -> int | None:
        """The string index of an LSP position, with positions.offset_at's rules; None outside the text."""
        if line < 0 or character < 0:
            return None
        span, text = self.line_index.span(line), self.line_index.line_text(line)
        if span is None or text is None:
            return None
        return span[0] + column_index(text, character, self.encoding)

    def window(self, before: int, lead: str, after: int, chars: int) -> tuple[str, str]:
        """(text[:before] + lead, text[after:]) cut to whole lines of at most `chars` characters on each side, as
        `documents.window` cuts them, without joining the whole text."""
        rope = self.line_index
        head_start, tail_end = max(before - (chars - len(lead)), 0), min(after + chars, rope.text_length)
        head, tail = rope.text_between(head_start, before) + lead, rope.text_between(after, tail_end)
        if head_start > 0:
            head = head[head.find("\n") + 1 :] if "\n" in head else head
        if tail_end < rope.text_length:
            tail = tail[: tail.rfind("\n") + 1] if "\n" in tail else tail
        return head, tail

    def _apply_incremental_change(self, change: t.TextDocumentContentChangePartial) -> None:
        rope = self.line_index
        last_line, length = rope.line_count - 1, rope.text_length
        ends = []
        for position in (change.range.start, change.range.end):
            offset = self.offset_at(position.line, position.character)
            # a line past the end means the end of the text, as pygls takes it
            ends.append((last_line, length) if offset is None else (position.line, offset))
        (start_line, start), (end_line, end) = ends
        if end < start:
            (start_line, start), (end_line, end) = (end_line, end), (start_line, start)
        rope.replace(start_line, start, end_line, end, change.text)
        self._source = None  # joined again when read

    def _apply_full_change(self, change: t.TextDocumentContentChangeEvent) -> None:
        super()._apply_full_change(change)
        self._rope = None


class IndexedWorkspace(Workspace):
    """pygls' workspace, making `IndexedDocument`s."""

    @classmethod
    def like(cls, workspace: Workspace) -> IndexedWorkspace:
        """An empty workspace with the root, folders and position encoding of `workspace`."""
        return cls(workspace.root_uri, t.TextDocumentSyncKind.Incremental, list(workspace.folders.values()),
                   workspace.position_encoding)

    def _create_text_document(self, doc_uri: str, source: str | None = None, version: int | None = None,
                              language_id: str | None = None) -> TextDocument:
        return IndexedDocument(doc_uri, source=source, version=version, language_id=language_id,
                               sync_kind=t.TextDocumentSyncKind.Incremental, position_codec=self.position_codec)
