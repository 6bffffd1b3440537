"""Definitions found with tree-sitter queries (name, signature, docstring) and the index of them over open
documents and workspace files. The index is the one owner of that state; it never reads the disk on its own
except in `add_file`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .imports import forwarded_imports, imported_paths
from .languages import PLAIN_TEXT, definitions_query, language_for_file, language_for_path
from .syntax import parse

MAX_SIGNATURE_CHARS = 400
MAX_DOC_CHARS = 160
MAX_DOC_LINES = 3
_DOC_CLOSERS = (('"""', '"""'), ("'''", "'''"), ("/*", " */"), ("--[[", "]]"))
MAX_FILE_BYTES = 1_000_000
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
                _signature(node, source, language),
                _doc(node, language),
                depth=len(enclosing),
                is_container=not _CONTAINERS.isdisjoint(node.type.split("_")),
            )
        )
        enclosing.append(node.end_byte)
    return tuple(found)


def _last_identifier(text: str) -> str:
    names = IDENTIFIER.findall(text)
    return names[-1] if names else ""


def _signature(node: Any, source: bytes, language: str) -> str:
    body = node.child_by_field_name("body")
    end = _header_end(node, source) if language == "ruby" or body is None else body.start_byte
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


def _doc(node: Any, language: str) -> str:
    if language == "python":
        body = node.child_by_field_name("body")
        first = body.named_children[0] if body is not None and body.named_children else None
        if (
            first is not None
            and first.type == "expression_statement"
            and first.named_children
            and first.named_children[0].type == "string"
        ):
            return _short(_indented(first))
        return ""
    comments: list[Any] = []
    prev = node.prev_sibling
    row = node.start_point[0]
    while prev is not None and "comment" in prev.type and prev.end_point[0] >= row - 1:
        comments.append(prev)
        row = prev.start_point[0]
        prev = prev.prev_sibling
    return _short("\n".join(_indented(c) for c in reversed(comments)))


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


@dataclass(frozen=True)
class FileSymbols:
    """The definitions of one file at one version of its text, and their outline."""

    path: str
    language: str
    definitions: tuple[Definition, ...]
    text_hash: int
    forwards: str = ""  # its `#include "..."` or `export ... from` lines: what its importers see through it
    names: frozenset[str] = frozenset()
    levels: tuple[tuple[Definition, ...], ...] = ()  # the definitions at each nesting depth, in file order
    members: Mapping[Definition, tuple[Definition, ...]] = field(default_factory=dict)  # of each container


def _file_symbols(
    path: str, language: str, definitions: tuple[Definition, ...], text_hash: int, forwards: str
) -> FileSymbols:
    """The symbols of a file, with the outline computed once: names, definitions by depth, members of classes."""
    levels: list[list[Definition]] = []
    members: dict[Definition, list[Definition]] = {}
    enclosing: list[Definition] = []
    for definition in definitions:  # in file order: a class's members follow it
        del enclosing[definition.depth :]
        if definition.depth and len(enclosing) == definition.depth and enclosing[-1].is_container:
            members.setdefault(enclosing[-1], []).append(definition)
        enclosing.append(definition)
        while len(levels) <= definition.depth:
            levels.append([])
        levels[definition.depth].append(definition)
    return FileSymbols(
        path,
        language,
        definitions,
        text_hash,
        forwards,
        frozenset(d.name for d in definitions),
        tuple(tuple(level) for level in levels),
        {container: tuple(inside) for container, inside in members.items()},
    )


class WorkspaceIndex:
    """Definitions of every file it was given, by path and by name."""

    def __init__(self) -> None:
        self._files: dict[str, FileSymbols] = {}
        self._by_name: dict[str, dict[str, tuple[Definition, ...]]] = {}
        self._imports: dict[tuple[str, str], tuple[int, int, list[str]]] = {}  # (path, language) -> key, result
        self._paths_version = 0  # bumped whenever a path comes or goes, or the forwards of a file change

    def __contains__(self, path: str) -> bool:
        return path in self._files

    def __len__(self) -> int:
        return len(self._files)

    def paths(self) -> Iterable[str]:
        return self._files.keys()

    def update(
        self,
        path: str,
        language: str,
        source: bytes,
        tree: Any | None = None,
        patch: Callable[[tuple[Definition, ...]], tuple[Definition, ...]] | None = None,
    ) -> None:
        """(Re)index a file from its text; a no-op when the text did not change. `patch` gives the new definitions
        from the ones indexed before (an edit's incremental update); without it they are extracted again."""
        digest = hash(source)
        known = self._files.get(path)
        if known is not None and known.text_hash == digest:
            return
        forwards = forwarded_imports(language, source)
        if known is None or known.forwards != forwards:
            self._paths_version += 1
        if patch is not None and known is not None and known.language == language:
            definitions = patch(known.definitions)
        else:
            definitions = extract_definitions(language, source, path, tree)
        self._drop(path)
        self._files[path] = _file_symbols(path, language, definitions, digest, forwards)
        grouped: dict[str, list[Definition]] = {}
        for d in definitions:
            grouped.setdefault(d.name, []).append(d)
        for name, defs in grouped.items():
            self._by_name.setdefault(name, {})[path] = tuple(defs)

    def add_file(self, path: Path) -> bool:
        """Index a file from disk when it is a source file of a known language (by its extension, or by its shebang
        when it has none); whether it was indexed."""
        try:
            if path.stat().st_size > MAX_FILE_BYTES or (path.suffix and language_for_path(path.name) == PLAIN_TEXT):
                return False
            with path.open("rb") as file:
                head = file.read(4096)
                language = language_for_file(path.name, head)
                if language == PLAIN_TEXT:
                    return False  # no extension, and no shebang of a known interpreter
                source = head + file.read()
        except OSError:
            return False
        self.update(str(path), language, source)
        return True

    def remove(self, path: str) -> None:
        if path in self._files:
            self._paths_version += 1
        self._drop(path)

    def imports_of(self, path: str, language: str, head: str) -> list[str]:
        """The indexed files `path` imports (head: the part of its text with the imports), cached until the
        imports or the set of indexed paths change."""
        key = hash(head)
        cached = self._imports.get((path, language))
        if cached is not None and cached[0] == key and cached[1] == self._paths_version:
            return cached[2]
        found = imported_paths(path, language, head, self._files.keys(), self._forwards_of)
        self._imports[(path, language)] = (key, self._paths_version, found)
        return found

    def _forwards_of(self, path: str) -> str:
        known = self._files.get(path)
        return "" if known is None else known.forwards

    def _drop(self, path: str) -> None:
        known = self._files.pop(path, None)
        if known is None:
            return
        for name in {d.name for d in known.definitions}:
            by_path = self._by_name.get(name, {})
            by_path.pop(path, None)
            if not by_path:
                self._by_name.pop(name, None)

    def definitions_in(self, path: str) -> tuple[Definition, ...]:
        known = self._files.get(path)
        return () if known is None else known.definitions

    def members_of(self, container: Definition) -> tuple[Definition, ...]:
        """The definitions directly inside a class, struct, interface or module (its methods, nested types)."""
        known = self._files.get(container.path)
        return () if known is None else known.members.get(container, ())

    def outline(self, path: str) -> tuple[tuple[Definition, ...], ...]:
        """A file's definitions at each nesting depth (top level first), in file order."""
        known = self._files.get(path)
        return () if known is None else known.levels

    def names_in(self, path: str) -> frozenset[str]:
        known = self._files.get(path)
        return frozenset() if known is None else known.names

    def definitions_named(self, name: str) -> Iterator[Definition]:
        for defs in self._by_name.get(name, {}).values():
            yield from defs

    def count_named(self, name: str) -> int:
        """How many files define `name`."""
        return len(self._by_name.get(name, {}))


def index_directory(index: WorkspaceIndex, root: Path, max_files: int = 5000) -> int:
    """Index the source files under `root` (skipping hidden and dependency folders); how many were indexed."""
    skipped = {"node_modules", "__pycache__", "target", "build", "dist", "venv"}
    count = 0
    for path in sorted(root.rglob("*")):
        if count >= max_files:
            break
        parts = path.relative_to(root).parts
        if any(p.startswith(".") or p in skipped for p in parts[:-1]) or not path.is_file():
            continue
        count += index.add_file(path)
    return count
