"""LSP positions ↔ string indices, in the position encoding the client and server agreed on (UTF-16 unless the
client offered UTF-8 or UTF-32). Pure functions over the document text.
"""

from __future__ import annotations

UTF8, UTF16, UTF32 = "utf-8", "utf-16", "utf-32"


def code_units(char: str, encoding: str) -> int:
    """How many code units of `encoding` one code point takes."""
    if encoding == UTF8:
        return len(char.encode("utf-8", "surrogatepass"))
    if encoding == UTF16:
        return 2 if ord(char) > 0xFFFF else 1
    return 1


def line_starts(text: str) -> list[int]:
    """The string index where each line starts (lines end at \\n; a \\r before it belongs to the line end)."""
    starts = [0]
    index = text.find("\n")
    while index != -1:
        starts.append(index + 1)
        index = text.find("\n", index + 1)
    return starts


def offset_at(text: str, line: int, character: int, encoding: str = UTF16) -> int | None:
    """The string index of an LSP position, or None when `line` lies outside the text. A `character` past the
    end of its line means the end of the line, as the LSP specification says; one that falls inside a
    multi-unit character means the start of that character."""
    if line < 0 or character < 0:
        return None
    starts = line_starts(text)
    if line >= len(starts):
        return None
    end = starts[line + 1] if line + 1 < len(starts) else len(text)
    return starts[line] + column_index(text[starts[line] : end], character, encoding)


def column_index(line: str, character: int, encoding: str = UTF16) -> int:
    """The index in `line` (one line, with or without its line break) of `character` code units of `encoding`,
    with offset_at's rules for a character past the end or inside a multi-unit character."""
    end = len(line)
    if end and line[end - 1] == "\n":
        end -= 1
    if end and line[end - 1] == "\r":
        end -= 1
    if encoding == UTF32:
        return min(max(character, 0), end)
    units = 0
    index = 0
    while index < end:
        width = code_units(line[index], encoding)
        if units + width > character:
            break
        units += width
        index += 1
    return index


def units_between(text: str, start: int, end: int, encoding: str = UTF16) -> int:
    """The length of text[start:end] in code units of `encoding`."""
    if encoding == UTF32:
        return end - start
    return sum(code_units(c, encoding) for c in text[start:end])
