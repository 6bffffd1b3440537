"""Definitions found with a language's tree-sitter query: each one's name, signature (its header up to the body),
docstring or leading comment, and nesting. Pure: source bytes in, frozen `Definition`s out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .languages import LanguageSpec, definitions_query, language_spec
from .syntax import parse

MAX_SIGNATURE_CHARS = 400
MAX_DOC_CHARS = 160
MAX_DOC_LINES = 3
_DOC_CLOSERS = (('"""', '"""'), ("'''", "'''"), ("/*", " */"), ("--[[", "]]"))
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CONTAINERS = frozenset(("class", "interface", "struct", "module", "trait", "enum", "record"))  # words of node types


@dataclass(frozen=True)
class Definition:
    """One named definition and the text that describes it to the model."""

    name: str
    path: str
    line: int  # 0-based row of the definition's start
    signature: str  # the header up to its body, as written
    doc: str = ""  # docstring or leading comment, as written
    depth: int = 0  # how many definitions of the file enclose it
    is_container: bool = False  # a class, struct, interface or module: the definitions inside are its members

    def render(self) -> str:
        """The signature with its docstring, as it goes into a prompt."""
        if not self.doc:
            return self.signature
        if self.doc.lstrip().startswith(('"', "'")):  # a docstring follows its header
            return f"{self.signature}\n{self.doc}"
        return f"{self.doc}\n{self.signature}"


def extract_definitions(
    language: str, source: bytes, path: str, tree: Any | None = None, byte_range: tuple[int, int] | None = None
) -> tuple[Definition, ...]:
    """Every definition a language's query finds in `source` (using `tree` when the caller has it), or only those
    that lie within `byte_range`."""
    query = definitions_query(language)
    if query is None:
        return ()
    tree = tree if tree is not None else parse(language, source)
    if tree is None:
        return ()
    from tree_sitter import QueryCursor

    spec = language_spec(language)
    cursor = QueryCursor(query)
    if byte_range is not None:
        cursor.set_byte_range(*byte_range)
    matched: list[tuple[Any, Any]] = []
    for _, captures in cursor.matches(tree.root_node):
        nodes, names = captures.get("definition"), captures.get("name")
        if nodes and names and (byte_range is None or byte_range[0] <= nodes[0].start_byte < byte_range[1]):
            matched.append((nodes[0], names[0]))
    matched.sort(key=lambda m: (m[0].start_byte, -m[0].end_byte))
    found: list[Definition] = []
    enclosing: list[int] = []  # end bytes of the definitions that hold the current one
    for i, (node, name_node) in enumerate(matched):
        if i and (node.start_byte, node.end_byte) == (matched[i - 1][0].start_byte, matched[i - 1][0].end_byte):
            continue  # one node that two patterns match
        name = _last_identifier(source[name_node.start_byte : name_node.end_byte].decode("utf-8", errors="replace"))
        if not name:
            continue
        while enclosing and enclosing[-1] <= node.start_byte:
            enclosing.pop()
        found.append(
            Definition(
                name,
                path,
                node.start_point[0],
                _signature(node, source, spec),
                _doc(node, spec),
                depth=len(enclosing),
                is_container=not _CONTAINERS.isdisjoint(node.type.split("_")),
            )
        )
        enclosing.append(node.end_byte)
    return tuple(found)


def _last_identifier(text: str) -> str:
    names = IDENTIFIER.findall(text)
    return names[-1] if names else ""


def _signature(node: Any, source: bytes, spec: LanguageSpec) -> str:
    body = node.child_by_field_name("body")
    end = _header_end(node, source) if spec.is_signature_first_line or body is None else body.start_byte
    start = node.start_byte
    parent = node.parent
    if parent is not None and parent.type == "decorated_definition":
        start = parent.start_byte
    line_start = source.rfind(b"\n", 0, start) + 1
    indent = source[line_start:start]
    text = (indent if not indent.strip() else b"") + source[start:end]
    return text.decode("utf-8", errors="replace").rstrip().rstrip("{").rstrip()[:MAX_SIGNATURE_CHARS]


def _header_end(node: Any, source: bytes) -> int:
    """The end of a body-less definition: the node, or its first line when it spans more (Ruby, C structs)."""
    if node.start_point[0] == node.end_point[0] or node.type in ("declaration", "type_definition"):
        return int(node.end_byte)
    first_newline = source.find(b"\n", node.start_byte, node.end_byte)
    return int(node.end_byte) if first_newline < 0 else first_newline


def _doc(node: Any, spec: LanguageSpec) -> str:
    return _short("\n".join(_indented(n) for n in spec.doc_nodes(node)))


def _short(doc: str) -> str:
    """The head of a docstring or comment (its first lines, within MAX_DOC_CHARS), still closed when cut."""
    lines = doc.split("\n")
    head = "\n".join(lines[:MAX_DOC_LINES])[:MAX_DOC_CHARS]
    if head == doc:
        return doc
    opener = doc.lstrip()[:4]
    closer = next((c for o, c in _DOC_CLOSERS if opener.startswith(o)), "")
    return f"{head.rstrip()} ...{closer}"


def _indented(node: Any) -> str:
    return " " * int(node.start_point[1]) + bytes(node.text or b"").decode("utf-8", errors="replace")
