"""Where completions are asked for in a source file: cursor and end offsets (characters) of the four kinds of
completion the default model is trained and evaluated on. The rest of a line, the next few lines, a whole block
body, and a random span.

Pure text functions: the training corpus maps these offsets to tokens, the benchmarks keep them as text.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import IntEnum

BLOCK_OPENERS = {"python": (":",), "c": ("{",), "cpp": ("{",)}


class SpanKind(IntEnum):
    """What the completion covers."""

    LINE = 0  # from the cursor to the end of its line
    LINES = 1  # the rest of the line and the next 1-6 lines
    BLOCK = 2  # the whole indented body under a block opener (`def f():`, `if x {`)
    SPAN = 3  # a random stretch of characters


@dataclass(frozen=True)
class Span:
    """A completion task inside one text: the text[cursor:end] is what the model should write."""

    kind: SpanKind
    cursor: int
    end: int


@dataclass(frozen=True)
class Lines:
    """Per-line facts of a text: start and end offsets (end excludes the newline), indentation, blankness."""

    starts: list[int]
    ends: list[int]
    indents: list[int]
    blank: list[bool]
    last_chars: list[str]

    @classmethod
    def of(cls, text: str) -> Lines:
        starts, ends, indents, blank, last_chars = [], [], [], [], []
        offset = 0
        for line in text.split("\n"):
            stripped = line.lstrip(" \t")
            starts.append(offset)
            ends.append(offset + len(line))
            indents.append(len(line) - len(stripped))
            blank.append(not stripped.strip())
            last_chars.append(line.rstrip()[-1:] if stripped else "")
            offset += len(line) + 1
        return cls(starts, ends, indents, blank, last_chars)


def line_cursor(lines: Lines, index: int, rng: random.Random) -> int:
    """A cursor in line `index`: after the indentation, at the line start, or inside the code."""
    content = lines.starts[index] + lines.indents[index]
    roll = rng.random()
    if roll < 0.35 or content >= lines.ends[index] - 1:
        return content
    if roll < 0.5 and index > 0:
        return lines.starts[index]
    return rng.randrange(content, lines.ends[index])


def block_body_end(lines: Lines, header: int) -> int | None:
    """The last line of the body under `header` (deeper-indented lines, inner blank lines), or None."""
    last = None
    for index in range(header + 1, len(lines.starts)):
        if lines.blank[index]:
            continue
        if lines.indents[index] <= lines.indents[header]:
            break
        last = index
    return last


def line_spans(lines: Lines, count: int, rng: random.Random, kind: SpanKind) -> list[Span]:
    """`count` LINE or LINES spans on random non-blank lines."""
    code = [i for i, is_blank in enumerate(lines.blank) if not is_blank]
    spans = []
    for _ in range(min(count, len(code))):
        index = rng.choice(code)
        last = index if kind is SpanKind.LINE else min(index + rng.randint(1, 6), len(lines.ends) - 1)
        cursor = line_cursor(lines, index, rng)
        if lines.ends[last] > cursor:
            spans.append(Span(kind, cursor, lines.ends[last]))
    return spans


def block_spans(lines: Lines, language: str, count: int, rng: random.Random, max_body_lines: int = 12) -> list[Span]:
    """Up to `count` BLOCK spans: cursor at the end of an opener line or at the start of its first body line."""
    openers = BLOCK_OPENERS.get(language, (":", "{"))
    headers = [i for i, c in enumerate(lines.last_chars) if c in openers]
    rng.shuffle(headers)
    spans: list[Span] = []
    for header in headers:
        if len(spans) >= count:
            break
        last = block_body_end(lines, header)
        if last is None or last - header > max_body_lines:
            continue
        if rng.random() < 0.5:
            cursor = lines.ends[header]
        else:
            first = next(i for i in range(header + 1, last + 1) if not lines.blank[i])
            cursor = lines.starts[first] + lines.indents[first]
        spans.append(Span(SpanKind.BLOCK, cursor, lines.ends[last]))
    return spans


def random_spans(length: int, count: int, rng: random.Random, max_chars: int = 200) -> list[Span]:
    """`count` SPAN spans of 1..max_chars characters anywhere in a text of `length` characters."""
    spans = []
    for _ in range(count if length > 2 else 0):
        cursor = rng.randrange(1, length - 1)
        spans.append(Span(SpanKind.SPAN, cursor, min(length, cursor + rng.randint(1, max_chars))))
    return spans


def file_spans(text: str, language: str, rng: random.Random, lines_per_span: int = 3) -> list[Span]:
    """Training spans of every kind for one file, about one per `lines_per_span` lines."""
    lines = Lines.of(text)
    budget = max(1, len(lines.starts) // lines_per_span)
    return (
        line_spans(lines, budget, rng, SpanKind.LINE)
        + line_spans(lines, max(1, budget // 2), rng, SpanKind.LINES)
        + block_spans(lines, language, max(1, budget // 2), rng)
        + random_spans(len(text), max(1, budget // 3), rng)
    )
