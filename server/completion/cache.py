"""Completions the server has already computed: an LRU keyed by the completion context, and the suggestion last
shown in each document, so that typing the characters it starts with is answered with the rest of it.

Owns no I/O and no LSP types; all offsets are string indices (code points) into the document text.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass

ANCHOR_CHARS = 256  # how much text on each side of the cursor must match for a typing-through hit


def context_key(*parts: str | int | float | None) -> str:
    """A stable key for everything a completion depends on."""
    digest = hashlib.blake2b(digest_size=16)
    for part in parts:
        digest.update(repr(part).encode("utf-8", "surrogatepass"))
        digest.update(b"\x00")
    return digest.hexdigest()


@dataclass(frozen=True)
class Shown:
    """The suggestion answered for one document: texts inserted at `cursor_offset`, and the text around it."""

    cursor_offset: int
    prefix_tail: str  # the last ANCHOR_CHARS characters before the cursor
    suffix_head: str  # the first ANCHOR_CHARS characters after it
    texts: tuple[str, ...]


class CompletionCache:
    """Bounded LRU of context key → texts, plus the last suggestion per document."""

    def __init__(self, max_entries: int = 256, max_documents: int = 64) -> None:
        self.max_entries = max_entries
        self.max_documents = max_documents
        self.entries: OrderedDict[str, tuple[str, ...]] = OrderedDict()
        self.shown: OrderedDict[str, Shown] = OrderedDict()

    def get(self, key: str) -> tuple[str, ...] | None:
        texts = self.entries.get(key)
        if texts is not None:
            self.entries.move_to_end(key)
        return texts

    def put(self, key: str, texts: tuple[str, ...]) -> None:
        self.entries[key] = texts
        self.entries.move_to_end(key)
        while len(self.entries) > self.max_entries:
            self.entries.popitem(last=False)

    def remember_shown(self, uri: str, cursor_offset: int, prefix: str, suffix: str, texts: tuple[str, ...]) -> None:
        """Record what was answered at `cursor_offset` (`prefix`/`suffix`: the text before and after it)."""
        self.shown[uri] = Shown(cursor_offset, prefix[-ANCHOR_CHARS:], suffix[:ANCHOR_CHARS], texts)
        self.shown.move_to_end(uri)
        while len(self.shown) > self.max_documents:
            self.shown.popitem(last=False)

    def typed_through(self, uri: str, cursor_offset: int, prefix: str, suffix: str) -> tuple[str, ...] | None:
        """The rest of the shown suggestions when the user typed their first characters since they were shown;
        None when the text around the cursor does not say so."""
        shown = self.shown.get(uri)
        if shown is None:
            return None
        typed_chars = cursor_offset - shown.cursor_offset
        if typed_chars <= 0 or typed_chars > len(prefix) or suffix[:ANCHOR_CHARS] != shown.suffix_head:
            return None
        typed = prefix[len(prefix) - typed_chars:]
        before = prefix[: len(prefix) - typed_chars]
        if not before.endswith(shown.prefix_tail):
            return None
        rest = tuple(t[typed_chars:] for t in shown.texts if t.startswith(typed) and len(t) > typed_chars)
        return rest or None

    def forget(self, uri: str) -> None:
        self.shown.pop(uri, None)

    def clear(self) -> None:
        self.entries.clear()
        self.shown.clear()
