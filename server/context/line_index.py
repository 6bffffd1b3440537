"""A text kept in blocks of whole lines (a rope), so that an edit copies the block it touches instead of the whole
text, and finding a line counts block by block: where each line starts, in step with every edit. Works on `str`
(code points) or `bytes` (UTF-8); knows nothing about LSP positions or encodings.
"""

from __future__ import annotations

from typing import Generic, TypeVar

BLOCK_CHARS = 16_384  # a block is cut at the first line end after this many characters

Text = TypeVar("Text", str, bytes)


class LineIndex(Generic[Text]):
    """A text in blocks that each end with a line break (the last block may not), with the count of line breaks
    and the length of each block."""

    def __init__(self, text: Text) -> None:
        self._newline: Text = "\n" if isinstance(text, str) else b"\n"
        self._texts: list[Text] = blocks_of(text, self._newline)
        self._breaks = [block.count(self._newline) for block in self._texts]
        self._totals = [len(block) for block in self._texts]

    @property
    def line_count(self) -> int:
        return sum(self._breaks) + 1

    @property
    def text_length(self) -> int:
        return sum(self._totals)

    def text(self) -> Text:
        """The whole text: one join of the blocks."""
        return self._newline[:0].join(self._texts)

    def text_between(self, start: int, end: int) -> Text:
        """text[start:end], joining only the blocks it spans."""
        pieces, offset = [], 0
        for block, total in zip(self._texts, self._totals, strict=True):
            if offset >= end:
                break
            if offset + total > start:
                pieces.append(block[max(start - offset, 0) : end - offset])
            offset += total
        return self._newline[:0].join(pieces)

    def _locate(self, line: int) -> tuple[int, int, int] | None:
        """(block, start of the line in it, offset of the block), or None when the text has no such line."""
        if line < 0:
            return None
        offset, last = 0, len(self._texts) - 1
        for index, breaks in enumerate(self._breaks):
            if line < breaks + (index == last):
                block, start = self._texts[index], 0
                for _ in range(line):
                    start = block.find(self._newline, start) + 1
                return index, start, offset
            line -= breaks
            offset += self._totals[index]
        return None

    def span(self, line: int) -> tuple[int, int] | None:
        """(start, end) of `line` including its line break, or None when the text has no such line."""
        found = self._locate(line)
        if found is None:
            return None
        index, start, offset = found
        end = self._texts[index].find(self._newline, start)
        return offset + start, offset + (self._totals[index] if end < 0 else end + 1)

    def start(self, line: int) -> int | None:
        """Where `line` starts, or None when the text has no such line."""
        span = self.span(line)
        return None if span is None else span[0]

    def line_text(self, line: int) -> Text | None:
        """One line with its line break, or None when the text has no such line."""
        found = self._locate(line)
        if found is None:
            return None
        index, start, _ = found
        block = self._texts[index]
        end = block.find(self._newline, start)
        return block[start : len(block) if end < 0 else end + 1]

    def replace(self, start_line: int, start: int, end_line: int, end: int, text: Text) -> None:
        """text[start:end] of the old text, which lies on lines start_line..end_line, became `text`."""
        first, last = self._locate(start_line), self._locate(end_line)
        first_span, last_span = self.span(start_line), self.span(end_line)
        if first is None or last is None or first_span is None or last_span is None or not (
                first_span[0] <= start <= end <= last_span[1]):
            raise ValueError(f"edit [{start}, {end}) is not on lines {start_line}..{end_line}")
        begin, stop = first[0], last[0] + 1
        joined = self._newline[:0].join(self._texts[begin:stop])
        joined = joined[: start - first[2]] + text + joined[end - first[2] :]
        while stop < len(self._texts) and not joined.endswith(self._newline):  # its line break was cut: the line
            joined += self._texts[stop]  # goes on in the next block
            stop += 1
        blocks = blocks_of(joined, self._newline) if len(joined) > 2 * BLOCK_CHARS else [joined]
        self._texts[begin:stop] = blocks
        self._breaks[begin:stop] = [block.count(self._newline) for block in blocks]
        self._totals[begin:stop] = [len(block) for block in blocks]


def blocks_of(text: Text, newline: Text) -> list[Text]:
    """`text` cut at the first line end after each BLOCK_CHARS characters (one empty block for an empty text)."""
    blocks, start = [], 0
    while True:
        cut = text.find(newline, start + BLOCK_CHARS) + 1
        if cut <= 0 or cut >= len(text):
            blocks.append(text[start:])
            return blocks
        blocks.append(text[start:cut])
        start = cut
