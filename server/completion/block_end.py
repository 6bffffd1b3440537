"""Where a block completion ends: the end of the syntactic block it started in, from the tree-sitter tree of
prefix + completion + suffix where the language has a grammar, else from indentation and the language's closing
words. Pure: text in, text out.
"""

from __future__ import annotations

import re
from typing import Any

from ..context.languages import language_spec
from ..context.syntax import enclosing_node, parse
from .fit import next_starts_with

CLOSING_WORDS = frozenset(("}", ")", "]", "end", "fi", "done", "esac", "until"))
PREFIX_WINDOW_CHARS = 2000
SUFFIX_WINDOW_CHARS = 400
_STATEMENT_START = re.compile(r"[A-Za-z_@#]")


def cut_at_block_end(text: str, prefix: str, suffix: str, language: str) -> tuple[str, str]:
    """The completion up to the end of the syntactic block it started in, and which rule found it: the syntax
    tree of prefix + completion + suffix where a grammar exists, indentation elsewhere."""
    head = _window_start(prefix)
    prefix_bytes = prefix[head:].encode("utf-8")
    body = text.encode("utf-8")
    tail = suffix[:SUFFIX_WINDOW_CHARS].encode("utf-8")
    tree = parse(language, prefix_bytes + body + tail)
    if tree is not None:
        cursor = len(prefix_bytes)
        node = enclosing_node(tree.root_node, cursor)
        if node is not None and node.parent is not None and not node.has_error and not _inside_error(node):
            if node.end_byte - cursor >= len(body):
                return text, "block"
            closer = _closer(node)
            if closer is not None and closer.end_byte - cursor <= len(body):
                if next_starts_with(suffix, closer.type):  # the document already closes the block
                    end = min(closer.start_byte, node.end_byte) - cursor
                    return body[:end].decode("utf-8", errors="replace").rstrip(), "block"
                return body[: closer.end_byte - cursor].decode("utf-8", errors="replace"), "block"
            return body[: node.end_byte - cursor].decode("utf-8", errors="replace"), "block"
    return cut_by_indentation(text, prefix, suffix, language), "indent"


def _closer(node: Any) -> Any | None:
    """The token that closes a block (`}`, `end`, `done`...): its own last child, or for a body without one (Lua,
    Ruby, Python-like grammars) its parent's, when only that token follows the body."""
    for owner in (node, node.parent):
        last = owner.children[-1] if owner is not None and owner.children else None
        if (
            last is not None
            and not last.is_named
            and last.type in CLOSING_WORDS
            and (owner is node or last.prev_sibling == node)
        ):
            return last
    return None


def _inside_error(node: Any) -> bool:
    while node is not None:
        if node.is_error:
            return True
        node = node.parent
    return False


def _window_start(prefix: str) -> int:
    """Where the parsed part of the prefix starts: the header line of the block holding the cursor (the nearest
    line above, indented less than the cursor line, that starts a statement), within the window."""
    limit = max(len(prefix) - PREFIX_WINDOW_CHARS, 0)
    line_start = prefix.rfind("\n") + 1
    target = _width(prefix[line_start:]) if not prefix[line_start:].strip() else _width(prefix[line_start:]) + 1
    end = line_start - 1
    while end > limit:
        start = prefix.rfind("\n", 0, end) + 1
        line = prefix[start:end]
        if line.strip() and _width(line) < target and _STATEMENT_START.match(line.lstrip()):
            return start
        end = start - 1
    return limit if limit == 0 else prefix.find("\n", limit) + 1


def cut_by_indentation(text: str, prefix: str, suffix: str, language: str) -> str:
    """The completion up to the first line indented less than the block it started in."""
    current_line = prefix[prefix.rfind("\n") + 1 :]
    lines = text.split("\n")
    if current_line.strip():
        level = _width(current_line)
    else:
        level = _width(current_line + lines[0]) if lines[0].strip() else _width(current_line)
    closers = language_spec(language).block_closers
    kept = [lines[0]]
    for line in lines[1:]:
        if line.strip() and _width(line) < level:
            word = line.strip().split()[0]
            if any(word.startswith(c) for c in closers) and not next_starts_with(suffix, word):
                kept.append(line)
            break
        kept.append(line)
    return "\n".join(kept).rstrip() if len(kept) < len(lines) else text


def _width(line: str) -> int:
    expanded = line.expandtabs(4)
    return len(expanded) - len(expanded.lstrip())
