"""Where a synthetic edit lands in a Python file (engine/training/edits.py): the text replacements, insertion points
for a new parameter in a def and its calls, the calls that make up parallel lines, the names that can be renamed,
and the line offsets they are measured in."""

from __future__ import annotations

import ast
import builtins
import io
import keyword
import tokenize
from dataclasses import dataclass

RESERVED = frozenset(dir(builtins)) | frozenset(keyword.kwlist) | {"self", "cls", "_"}


@dataclass(frozen=True)
class Replacement:
    """Replace characters [start, end) of a text with `text`."""

    start: int
    end: int
    text: str


def with_text(site: Replacement, parameter: str, has_parameters: bool) -> Replacement:
    return Replacement(site.start, site.end, f", {parameter}" if has_parameters else parameter)


def def_insertion(text: str, lines: LineOffsets, node: ast.FunctionDef) -> Replacement | None:
    """Where a new last parameter goes: after the last one, or inside the empty parentheses."""
    if node.args.args:
        last = node.args.args[-1]
        at = lines.offset(text, last.end_lineno or last.lineno, last.end_col_offset or 0)
        return Replacement(at, at, "")
    opening = text.find("(", lines.offset(text, node.lineno, node.col_offset))
    return Replacement(opening + 1, opening + 1, "") if opening >= 0 and text[opening + 1] == ")" else None


def call_insertion(text: str, lines: LineOffsets, call: ast.Call, argument: str) -> Replacement | None:
    if call.args:
        last = call.args[-1]
        at = lines.offset(text, last.end_lineno or last.lineno, last.end_col_offset or 0)
        return Replacement(at, at, f", {argument}")
    close = lines.offset(text, call.end_lineno or call.lineno, call.end_col_offset or 0) - 1
    return Replacement(close, close, argument) if text[close] == ")" and text[close - 1] == "(" else None


def line_call(text: str, lines: LineOffsets, statement: ast.stmt | None) -> ast.Call | None:
    """The call a one-line statement ends with (`f(x)`, `y = f(x)`), or None."""
    if statement is None or statement.end_lineno != statement.lineno:
        return None
    value = statement.value if isinstance(statement, ast.Expr | ast.Assign) else None
    if not isinstance(value, ast.Call) or value.end_col_offset != statement.end_col_offset:
        return None
    if any(isinstance(a, ast.Starred) for a in value.args) or any(k.arg is None for k in value.keywords):
        return None
    return value


def bodies(tree: ast.AST) -> list[list[ast.stmt]]:
    out = []
    for node in ast.walk(tree):
        for field in ("body", "orelse", "finalbody"):
            body = getattr(node, field, None)
            if isinstance(body, list) and body and isinstance(body[0], ast.stmt):
                out.append(body)
    return out


def called_name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "self":
        return func.attr
    return None


def renamable(tree: ast.AST) -> set[str]:
    """Names bound or read as plain names and never used as an attribute, keyword, import or global elsewhere."""
    plain: set[str] = set()
    other: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            plain.add(node.id)
        elif isinstance(node, ast.arg):
            plain.add(node.arg)
        elif isinstance(node, ast.Attribute):
            other.add(node.attr)
        elif isinstance(node, ast.keyword) and node.arg:
            other.add(node.arg)
        elif isinstance(node, ast.alias):
            other.update((node.asname or node.name).split("."))
            other.update(node.name.split("."))
        elif isinstance(node, ast.Global | ast.Nonlocal):
            other.update(node.names)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            other.add(node.name)
    return {n for n in plain - other - RESERVED if len(n) >= 2 and not n.startswith("__")}


def name_tokens(text: str) -> dict[str, list[int]]:
    """Every NAME token of `text` (not in strings or comments): name → character offsets, in order."""
    lines = LineOffsets(text)
    out: dict[str, list[int]] = {}
    with io.StringIO(text) as stream:
        for token in tokenize.generate_tokens(stream.readline):
            if token.type == tokenize.NAME:
                out.setdefault(token.string, []).append(lines.starts[token.start[0] - 1] + token.start[1])
    return out


def identifiers(text: str) -> list[str]:
    return list(name_tokens(text))


def fresh(name: str, taken: dict[str, list[int]]) -> str:
    while name in taken:
        name += "_"
    return name


class LineOffsets:
    """Character offsets of each line start (1-based line numbers as ast and tokenize give them)."""

    def __init__(self, text: str) -> None:
        self.starts = [0]
        for line in text.split("\n")[:-1]:
            self.starts.append(self.starts[-1] + len(line) + 1)

    def offset(self, text: str, lineno: int, col_bytes: int) -> int:
        """The character offset of ast's (line, UTF-8 byte column)."""
        start = self.starts[lineno - 1]
        line = text[start : self.starts[lineno] if lineno < len(self.starts) else len(text)]
        return start + len(line.encode("utf-8")[:col_bytes].decode("utf-8", "replace"))
