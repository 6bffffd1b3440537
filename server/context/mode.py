"""The completion mode at the cursor (rest of line, next lines, whole body), read from the text around it and
the syntax tree, and the canvas length and step budget each mode gets.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from .languages import language_spec
from .syntax import SyntaxTree, has_error_near


class CompletionMode(StrEnum):
    """How much text a completion may insert."""

    REST_OF_LINE = "line"  # inside an expression, or text right of the cursor: finish the line
    NEXT_LINES = "lines"  # after a complete statement: the following lines of the enclosing block
    WHOLE_BODY = "body"  # at the start of an empty block: the whole body


@dataclass(frozen=True)
class ModePlan:
    canvas_length: int
    max_steps: int


PLANS = {
    CompletionMode.REST_OF_LINE: ModePlan(32, 12),
    CompletionMode.NEXT_LINES: ModePlan(64, 16),
    CompletionMode.WHOLE_BODY: ModePlan(128, 24),
}


_PUNCTUATION_ONLY = frozenset(")]}>;,:'\"` \t")
_CONTINUES_LINE = frozenset("([{,.=+-*/%<>&|^~:\\")


def completion_mode(doc: SyntaxTree, cursor_byte: int) -> CompletionMode:
    """The mode the cursor position calls for, from the text around it and the syntax tree."""
    source = doc.source
    line_start = source.rfind(b"\n", 0, cursor_byte) + 1
    line_end = source.find(b"\n", cursor_byte)
    line_end = len(source) if line_end < 0 else line_end
    before = source[line_start:cursor_byte].decode("utf-8", errors="replace")
    after = source[cursor_byte:line_end].decode("utf-8", errors="replace")
    if not set(after) <= _PUNCTUATION_ONLY or _in_comment_or_string(doc, cursor_byte):
        return CompletionMode.REST_OF_LINE
    spec = language_spec(doc.language)
    if not before.strip():
        previous = _previous_code_line(source, line_start, spec.line_comment)
        opens = previous is not None and _opens_block(previous, spec.block_openers)
        indent = _indent_width(previous or "")
        if opens and _block_is_empty(source, line_end, indent, spec.block_closers):
            return CompletionMode.WHOLE_BODY
        return CompletionMode.NEXT_LINES
    stripped = _strip_comment(before, spec.line_comment).rstrip()
    if (
        _opens_block(stripped, spec.block_openers)
        and not after.strip()
        and _block_is_empty(source, line_end, _indent_width(before), spec.block_closers)
    ):
        return CompletionMode.WHOLE_BODY
    last = stripped[-1:] if stripped else ""
    if before != before.rstrip() or last in _CONTINUES_LINE:
        return CompletionMode.REST_OF_LINE
    if (last.isalnum() or last == "_") and (doc.root is None or has_error_near(doc.root, line_start, cursor_byte)):
        return CompletionMode.REST_OF_LINE  # half a word, or a statement that does not parse yet
    return CompletionMode.NEXT_LINES


def _in_comment_or_string(doc: SyntaxTree, offset: int) -> bool:
    if doc.root is None or offset == 0:
        return False
    node = doc.root.descendant_for_byte_range(offset - 1, offset)
    while node is not None:
        if node.start_byte < offset < node.end_byte and (
            "comment" in node.type or node.type in ("string", "string_content", "template_string", "raw_string_literal")
        ):
            return True
        node = node.parent
    return False


def _previous_code_line(source: bytes, line_start: int, comment: str | None) -> str | None:
    end = line_start - 1
    while end > 0:
        start = source.rfind(b"\n", 0, end) + 1
        line = source[start:end].decode("utf-8", errors="replace")
        if _strip_comment(line, comment).strip():
            return _strip_comment(line, comment).rstrip()
        end = start - 1
    return None


def _strip_comment(line: str, comment: str | None) -> str:
    if comment and comment in line and not line.lstrip().startswith(comment):
        head = line[: line.rindex(comment)]
        if head.count('"') % 2 == 0 and head.count("'") % 2 == 0:
            return head
    return line


def _opens_block(line: str, openers: tuple[str, ...]) -> bool:
    text = line.rstrip()
    for opener in openers:
        if text.endswith(opener) and (not opener[-1].isalpha() or not text[: -len(opener)][-1:].isalnum()):
            return True
    return False


def _block_is_empty(source: bytes, line_end: int, indent: int, closers: tuple[str, ...]) -> bool:
    """Whether the first non-blank line after `line_end` is not indented deeper than `indent` (or closes)."""
    position = line_end
    while position < len(source):
        end = source.find(b"\n", position + 1)
        end = len(source) if end < 0 else end
        line = source[position + 1 : end].decode("utf-8", errors="replace")
        if line.strip():
            first = line.strip().split()[0]
            return _indent_width(line) <= indent or any(first.startswith(c) for c in closers)
        position = end
    return True


def _indent_width(line: str) -> int:
    return len(line.expandtabs(4)) - len(line.expandtabs(4).lstrip())
