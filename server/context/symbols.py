"""The index of definitions (definitions.py) over open documents and workspace files, by path and by name, with
each file's outline and imports. The index is the one owner of that state; it never reads the disk on its own
except in `add_file`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .definitions import Definition, extract_definitions
from .imports import forwarded_imports, imported_paths
from .languages import PLAIN_TEXT, language_for_file, language_for_path

MAX_FILE_BYTES = 1_000_000


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
