"""LSP positions in UTF-16 (default), UTF-8 and UTF-32 against string indices: emoji, CJK, combining marks."""

from __future__ import annotations

import pytest

from diffusion_copilot.server.context.positions import UTF8, UTF16, UTF32, offset_at, units_between

TEXT = "a😀b\n中文x\ne\u0301z\r\nlast"


@pytest.mark.parametrize(("line", "character", "encoding", "offset"), [
    (0, 0, UTF16, 0), (0, 1, UTF16, 1), (0, 3, UTF16, 2), (0, 4, UTF16, 3),
    (0, 2, UTF16, 1),  # inside the surrogate pair: the start of the emoji
    (0, 5, UTF8, 1 + 1), (0, 6, UTF8, 3), (0, 2, UTF32, 2), (0, 3, UTF32, 3),
    (1, 1, UTF16, 5), (1, 3, UTF8, 5), (1, 6, UTF8, 6), (1, 2, UTF32, 6),
    (2, 2, UTF16, 10), (2, 1, UTF16, 9),  # e + combining acute are two code points
    (2, 99, UTF16, 11),  # past the line end (before \r\n): the end of the line
    (3, 4, UTF16, 17), (3, 99, UTF8, 17),
    (4, 0, UTF16, None), (-1, 0, UTF16, None),
])
def test_offset_at(line: int, character: int, encoding: str, offset: int | None) -> None:
    assert offset_at(TEXT, line, character, encoding) == offset


def test_empty_document_and_trailing_newline() -> None:
    assert offset_at("", 0, 0) == 0
    assert offset_at("x\n", 1, 0) == 2
    assert offset_at("x\n", 2, 0) is None


def test_units_between() -> None:
    assert units_between(TEXT, 0, 3, UTF16) == 4
    assert units_between(TEXT, 0, 3, UTF8) == 6
    assert units_between(TEXT, 0, 3, UTF32) == 3
