"""The language server's text documents: edits through the line index give pygls' own text."""

from __future__ import annotations

import random

import pytest
from lsprotocol import types as t
from pygls.workspace import PositionCodec, TextDocument

from diffusion_copilot.server.context import line_index
from diffusion_copilot.server.context.documents import window
from diffusion_copilot.server.context.indexed_document import IndexedDocument, IndexedWorkspace
from diffusion_copilot.server.context.positions import offset_at


def position(text: str, offset: int, encoding: str) -> t.Position:
    line = text.count("\n", 0, offset)
    start = text.rfind("\n", 0, offset) + 1
    units = len(text[start:offset].encode(encoding + ("-le" if encoding != "utf-8" else "")))
    return t.Position(line=line, character=units // {"utf-8": 1, "utf-16": 2, "utf-32": 4}[encoding])


@pytest.mark.parametrize("encoding", ["utf-16", "utf-8", "utf-32"])
@pytest.mark.parametrize("seed", range(3))
def test_edits_match_pygls(encoding: str, seed: int) -> None:
    rng = random.Random(seed)
    text = "".join(rng.choice(["ab", "\n", "é", "😀", "x"]) for _ in range(120))  # pygls splits at a lone \r too
    codec = PositionCodec(encoding=t.PositionEncodingKind(encoding))
    mine = IndexedDocument("file:///a.py", text, version=1, position_codec=codec)
    theirs = TextDocument("file:///a.py", text, version=1, position_codec=codec)
    for _ in range(100):
        start = rng.randrange(len(mine.source) + 1)
        end = min(len(mine.source), start + rng.choice([0, 0, 1, 4, 20]))
        change = t.TextDocumentContentChangePartial(
            range=t.Range(start=position(mine.source, start, encoding), end=position(mine.source, end, encoding)),
            text=rng.choice(["", "y", "\n", "😀z", "q\nr\n"]))
        mine.apply_change(change)
        theirs.apply_change(change)
        assert mine.source == theirs.source
        assert mine.offset_at(*_line_char(position(mine.source, start, encoding))) == start


def _line_char(p: t.Position) -> tuple[int, int]:
    return p.line, p.character


@pytest.mark.parametrize("seed", range(3))
def test_edits_match_offset_at(seed: int) -> None:
    rng = random.Random(seed)
    text = "".join(rng.choice(["ab", "\n", "é", "😀", "\r\n", "\r", "x"]) for _ in range(120))
    doc = IndexedDocument("file:///a.py", text, version=1)
    for _ in range(100):
        start = t.Position(line=rng.randrange(text.count("\n") + 2), character=rng.randrange(8))
        end = t.Position(line=start.line + rng.choice([0, 0, 1]), character=rng.randrange(8))
        new = rng.choice(["", "y", "\n", "😀z", "q\r\nr\n"])
        doc.apply_change(t.TextDocumentContentChangePartial(range=t.Range(start=start, end=end), text=new))
        begin, finish = offset_at(text, start.line, start.character), offset_at(text, end.line, end.character)
        begin = len(text) if begin is None else begin
        finish = len(text) if finish is None else finish
        begin, finish = min(begin, finish), max(begin, finish)
        text = text[:begin] + new + text[finish:]
        assert doc.source == text


def test_positions_past_the_end_and_full_changes() -> None:
    doc = IndexedDocument("file:///a.py", "ab\ncd", version=1)
    doc.apply_change(t.TextDocumentContentChangePartial(
        range=t.Range(start=t.Position(9, 0), end=t.Position(9, 0)), text="!"))
    assert doc.source == "ab\ncd!"
    assert doc.offset_at(1, 99) == 6 and doc.offset_at(2, 0) is None
    doc.apply_change(t.TextDocumentContentChangeWholeDocument(text="new\ntext"))
    assert doc.offset_at(1, 2) == 6


def test_the_workspace_makes_indexed_documents() -> None:
    workspace = IndexedWorkspace(None)
    workspace.put_text_document(t.TextDocumentItem(uri="file:///a.py", language_id="python", version=1, text="x"))
    assert isinstance(workspace.get_text_document("file:///a.py"), IndexedDocument)


@pytest.mark.parametrize("seed", range(3))
def test_a_window_without_joining_is_the_window_of_the_text(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(line_index, "BLOCK_CHARS", 16)  # windows across many blocks
    rng = random.Random(seed)
    text = "".join(rng.choice(["ab", "\n", "é", "😀", "xyz "]) for _ in range(300))
    doc = IndexedDocument("file:///a.py", text, version=1)
    for _ in range(50):
        before = rng.randrange(len(text) + 1)
        after = min(len(text), before + rng.choice([0, 0, 3]))
        lead, chars = rng.choice(["", "sel"]), rng.choice([5, 20, 80, 2000])
        assert doc.window(before, lead, after, chars) == window(text[:before] + lead, text[after:], chars)
