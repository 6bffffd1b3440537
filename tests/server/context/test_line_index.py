"""Line starts kept in step with edits agree with line starts computed from the text."""

from __future__ import annotations

import random

import pytest

from diffusion_copilot.server.context import line_index
from diffusion_copilot.server.context.line_index import LineIndex
from diffusion_copilot.server.context.positions import line_starts


def check(index: LineIndex[str], text: str) -> None:
    starts = line_starts(text)
    assert index.line_count == len(starts) and index.text_length == len(text) and index.text() == text
    ends = [*starts[1:], len(text)]
    for line, (start, end) in enumerate(zip(starts, ends, strict=True)):
        assert index.span(line) == (start, end) and index.line_text(line) == text[start:end]
    assert index.start(len(starts)) is None and index.span(-1) is None and index.line_text(len(starts)) is None
    for start, end in ((0, len(text)), (len(text) // 3, len(text) // 2), (len(text) // 2, len(text)), (5, 5)):
        assert index.text_between(start, end) == text[start:end]


@pytest.mark.parametrize("seed", range(6))
def test_random_edits_keep_line_starts(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(line_index, "BLOCK_CHARS", 6)  # many blocks, so edits cross them
    rng = random.Random(seed)
    text = "".join(rng.choice(["a", "bc", "\n", "\r\n", "é"]) for _ in range(200))
    index = LineIndex(text)
    check(index, text)
    for _ in range(150):
        start = rng.randrange(len(text) + 1)
        end = min(len(text), start + rng.choice([0, 0, 1, 3, 12, 40]))
        new = "".join(rng.choice(["x", "\n", "yz", "\n\n"]) for _ in range(rng.choice([0, 1, 1, 2, 6])))
        start_line, end_line = text.count("\n", 0, start), text.count("\n", 0, end)
        index.replace(start_line, start, end_line, end, new)
        text = text[:start] + new + text[end:]
        check(index, text)


def test_bytes_and_a_bad_range() -> None:
    source = "ä\nb\n".encode()
    index = LineIndex(source)
    assert [index.span(line) for line in range(3)] == [(0, 3), (3, 5), (5, 5)]
    index.replace(1, 3, 1, 4, b"xy\nz")
    assert [index.start(line) for line in range(4)] == [0, 3, 6, 8]
    with pytest.raises(ValueError):
        index.replace(0, 0, 0, 5, b"")  # the range runs past its last line
