"""Fitting a completion to the text around it: drop what repeats the suffix, balance the brackets it opened, and
match the document's indentation. Pure: text in, text out.
"""

from __future__ import annotations

import re

OPENERS, CLOSERS = "([{", ")]}"
PAIRS = dict(zip(CLOSERS, OPENERS, strict=True))
_LEADING_SPACE = re.compile(r"\s*")


def drop_suffix_repeats(text: str, suffix: str) -> str:
    """Without trailing lines the suffix already starts with, or (on one line) the rest of the cursor line."""
    line_rest = _first_line(suffix).strip()
    lines = text.split("\n")
    if len(lines) == 1:
        stripped = text.rstrip()
        if line_rest and stripped.endswith(line_rest) and len(stripped) > len(line_rest):
            return stripped[: -len(line_rest)]
        return text
    suffix_lines = _nonblank_lines(suffix, len(lines))
    for k in range(min(len(lines) - 1, len(suffix_lines)), 0, -1):
        tail = [s.rstrip() for s in lines[-k:] if s.strip()]
        if tail and tail == suffix_lines[: len(tail)] and lines[-k].strip():
            return "\n".join(lines[:-k]).rstrip()
    return text


def _first_line(text: str) -> str:
    end = text.find("\n")
    return text if end < 0 else text[:end]


def _nonblank_lines(text: str, count: int) -> list[str]:
    """The first `count` non-blank lines of `text`, right-stripped; reads no further (the suffix is the rest of the
    document, up to megabytes)."""
    found: list[str] = []
    start = 0
    while len(found) < count and start <= len(text):
        end = text.find("\n", start)
        end = len(text) if end < 0 else end
        if text[start:end].strip():
            found.append(text[start:end].rstrip())
        start = end + 1
    return found


def next_starts_with(text: str, word: str) -> bool:
    """Whether `text` starts with `word` after its leading whitespace, without copying the rest of `text`."""
    start = _LEADING_SPACE.match(text)
    return text.startswith(word, start.end() if start else 0)


def balance_brackets(text: str, suffix: str) -> str:
    """Close brackets the completion opened on its last line and left open, unless the suffix closes them; drop
    trailing closers of brackets opened before the completion when the suffix already has them."""
    stack: list[tuple[str, int]] = []
    foreign_tail = 0
    line = 0
    quote = ""
    for i, ch in enumerate(text):
        if quote:
            if ch == quote and text[i - 1] != "\\":
                quote = ""
            continue
        if ch in "\"'`":
            quote = ch
        elif ch == "\n":
            line += 1
        elif ch in OPENERS:
            stack.append((ch, line))
            foreign_tail = 0
        elif ch in CLOSERS:
            if stack and stack[-1][0] == PAIRS[ch]:
                stack.pop()
            elif not stack:
                foreign_tail = len(text) - i
                continue
        if not ch.isspace() and ch not in CLOSERS:
            foreign_tail = 0
    if foreign_tail:
        closers = "".join(c for c in text[-foreign_tail:] if not c.isspace())
        if next_starts_with(suffix, closers):
            return text[: len(text) - foreign_tail].rstrip()
    line_rest = _first_line(suffix).strip()
    missing = "".join(dict(zip(OPENERS, CLOSERS, strict=True))[o] for o, at in reversed(stack) if at == line)
    if missing and len(stack) == len([s for s in stack if s[1] == line]) and not line_rest.startswith(missing):
        return text.rstrip() + missing
    return text


def infer_indent_unit(text: str) -> str:
    """The indentation unit of the text around the cursor: a tab when most of the nearest indented lines start with
    one, else the most common step between the indents of adjacent lines."""
    tabs = spaces = 0
    steps: dict[int, int] = {}
    previous = 0
    for line in text.split("\n"):
        if not line.strip():
            continue
        lead = line[: len(line) - len(line.lstrip())]
        tabs += lead.startswith("\t")
        spaces += lead.startswith(" ")
        width = len(lead.expandtabs(4))
        if width > previous and not lead.startswith("\t"):
            steps[width - previous] = steps.get(width - previous, 0) + 1
        previous = width
    nearest = [line[:1] for line in text.split("\n") if line[:1] in (" ", "\t") and line.strip()][-10:]
    if nearest.count("\t") * 2 > len(nearest) or (not nearest and tabs > spaces):
        return "\t"
    common = [s for s in sorted(steps, key=steps.__getitem__, reverse=True) if s in (2, 3, 4, 8)]
    return " " * (common[0] if common else 4)


def indent_unit(tab_size: int, insert_spaces: bool) -> str:
    """The indentation unit of an LSP formattingOptions."""
    return " " * max(tab_size, 1) if insert_spaces else "\t"


def match_indentation(text: str, unit: str) -> str:
    """The completion with tabs turned into `unit` spaces, or runs of spaces into tabs, to match the document."""
    lines = text.split("\n")
    if len(lines) == 1:
        return text
    widths = [_lead(line) for line in lines[1:] if line.strip()]
    if unit == "\t":
        space_leads = [len(w) for w in widths if w.startswith(" ")]
        if not space_leads:
            return text
        step = min((w for w in space_leads if w), default=4)
        step = step if step in (2, 3, 4, 8) else 4
        return "\n".join(
            [lines[0]]
            + [
                "\t" * (len(_lead(line)) // step) + " " * (len(_lead(line)) % step) + line.lstrip(" ")
                if _lead(line).startswith(" ")
                else line
                for line in lines[1:]
            ]
        )
    if not any("\t" in w for w in widths):
        return text
    return "\n".join([lines[0]] + [_lead(line).replace("\t", unit) + line.lstrip(" \t") for line in lines[1:]])


def _lead(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]
