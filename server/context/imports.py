"""Resolving a file's imports to other files of the workspace: each language's module (languages/) says which paths
its imports name; here they are matched against the known paths, nearest first, and followed on through what
included headers include and what an `index.ts` re-exports. Works on the text and a set of known paths; touches no
disk.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Iterable

from .languages import language_spec

MAX_FORWARDED = 64  # imported files after which what they include or re-export is no longer followed


def imported_paths(
    path: str, language: str, text: str, known: Iterable[str], forwards_of: Callable[[str], str] | None = None
) -> list[str]:
    """The workspace files `path` imports, nearest first; `known` holds every indexed path. For C and C++,
    `forwards_of` gives the `#include` lines of an indexed file, and what the included headers include counts too;
    likewise through the `export ... from` lines of a JS/TS module (an `index.ts` that re-exports its folder)."""
    spec = language_spec(language)
    if spec.import_candidates is None:
        return []
    known_set = set(known)
    by_base: dict[str, list[str]] = {}
    for p in known_set:
        by_base.setdefault(posixpath.basename(p), []).append(p)
    found: list[str] = []
    seen = {path}
    pending = [(path, text)]
    while pending:  # breadth first: direct imports before what they hand on
        importer, importer_text = pending.pop(0)
        for candidate in spec.import_candidates(posixpath.dirname(importer), importer_text):
            for match in _match(candidate, known_set, by_base, spec.package_extension):
                if match not in seen:
                    seen.add(match)
                    found.append(match)
                    if forwards_of is not None and spec.forwards is not None and len(found) < MAX_FORWARDED:
                        pending.append((match, forwards_of(match)))
    directory = posixpath.dirname(path)
    extension = spec.package_extension
    if extension is not None:  # a package sees the other files of its directory without importing them
        found += sorted(
            p
            for p in known_set
            if posixpath.dirname(p) == directory and p != path and p.endswith(extension) and p not in found
        )
    return found


def forwarded_imports(language: str, source: bytes) -> str:
    """The lines through which a file hands other files on to its importers (C/C++ `#include "..."`, JS/TS
    `export ... from`): what `imported_paths` needs of it; empty for other languages."""
    pattern = language_spec(language).forwards
    if pattern is None:
        return ""
    return "\n".join(m.decode("utf-8", errors="replace") for m in pattern.findall(source))


def _match(candidate: str, known: set[str], by_base: dict[str, list[str]], package_extension: str | None
           ) -> list[str]:
    if candidate.startswith("/"):  # from the importing file's directory
        return [candidate[1:]] if candidate[1:] in known else []
    if candidate.endswith("/"):  # a package (Go, Java): every file of a directory with that name
        if package_extension is None:
            return []
        suffix = "/" + candidate[:-1]
        return sorted(p for p in known if p.endswith(package_extension) and posixpath.dirname(p).endswith(suffix))
    return sorted(
        p for p in by_base.get(posixpath.basename(candidate), ()) if p == candidate or p.endswith("/" + candidate)
    )[:3]
