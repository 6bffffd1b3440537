"""Resolving a file's imports to other files of the workspace: Python modules, JS/TS relative imports, Go and
Java packages, Rust modules, C/C++ includes, Lua `require`, Ruby `require_relative`, shell `source`.
Works on the text and a set of known paths; touches no disk.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable

_PY_FROM = re.compile(r"^[ \t]*from[ \t]+(\.*[\w.]*)[ \t]+import[ \t]+(\([^)]*\)|[\w, \t*]*)", re.M)
_PY_IMPORT = re.compile(r"^[ \t]*import[ \t]+([\w., \t]+)", re.M)
_JS = re.compile(r"""(?:from|import|require\()\s*['"](\.{1,2}/[^'"]+)['"]""")
_GO = re.compile(r'"([\w.\-/]+)"')
_RUST_MOD = re.compile(r"^\s*(?:pub\s+)?mod\s+(\w+)\s*;", re.M)
_RUST_USE = re.compile(r"^\s*(?:pub\s+)?use\s+(crate|super|self)((?:::\w+)+)", re.M)
_JAVA = re.compile(r"^\s*import\s+(?:static\s+)?([\w.]+)\s*;", re.M)
_INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
_LUA = re.compile(r"""require\s*\(?\s*['"]([\w./\-]+)['"]""")
_RUBY = re.compile(r"""require(_relative)?\s*\(?\s*['"]([\w./\-]+)['"]""")
_SHELL = re.compile(r"^\s*(?:source|\.)\s+['\"]?([\w./\-]+)", re.M)

_JS_EXTENSIONS = ("", ".ts", ".tsx", ".js", ".jsx", ".mjs", ".cjs", ".d.ts", "/index.ts", "/index.tsx", "/index.js")


def imported_paths(path: str, language: str, text: str, known: Iterable[str]) -> list[str]:
    """The workspace files `path` imports, nearest first; `known` holds every indexed path."""
    known_set = set(known)
    by_base: dict[str, list[str]] = {}
    for p in known_set:
        by_base.setdefault(posixpath.basename(p), []).append(p)
    directory = posixpath.dirname(path)
    found: list[str] = []
    for candidate in _candidates(directory, language, text):
        for match in _match(candidate, known_set, by_base):
            if match != path and match not in found:
                found.append(match)
    if language in ("go", "java"):  # a package sees the other files of its directory without importing them
        found += sorted(
            p
            for p in known_set
            if posixpath.dirname(p) == directory
            and p != path
            and p.endswith(".go" if language == "go" else ".java")
            and p not in found
        )
    return found


def _candidates(directory: str, language: str, text: str) -> Iterable[str]:
    """Relative paths to look for: absolute ones (from `directory`) start with '/'; others match as suffixes."""
    if language == "python":
        yield from _python(directory, text)
    elif language in ("javascript", "typescript", "typescriptreact"):
        for spec in _JS.findall(text):
            base = posixpath.normpath(posixpath.join(directory, spec))
            yield from ("/" + base + ext for ext in _JS_EXTENSIONS)
    elif language == "go":
        for spec in _GO.findall(text[: _go_imports_end(text)]):
            yield spec.rsplit("/", 1)[-1] + "/"
    elif language == "rust":
        for name in _RUST_MOD.findall(text):
            yield from ("/" + posixpath.join(directory, f"{name}.rs"), "/" + posixpath.join(directory, name, "mod.rs"))
        for root, path in _RUST_USE.findall(text):
            parts = path.strip(":").split("::")
            for n in range(len(parts), 0, -1):
                stem = "/".join(parts[:n])
                if root == "crate":
                    yield from (f"{stem}.rs", f"{stem}/mod.rs")
                else:
                    base = directory if root == "self" else posixpath.dirname(directory)
                    yield from ("/" + posixpath.join(base, f"{stem}.rs"), "/" + posixpath.join(base, stem, "mod.rs"))
    elif language == "java":
        for spec in _JAVA.findall(text):
            yield spec.replace(".", "/") + ".java"
    elif language in ("c", "cpp"):
        for spec in _INCLUDE.findall(text):
            yield "/" + posixpath.normpath(posixpath.join(directory, spec))
            yield spec
    elif language == "lua":
        for spec in _LUA.findall(text):
            stem = spec.replace(".", "/")
            yield from (f"{stem}.lua", f"{stem}/init.lua")
    elif language == "ruby":
        for relative, spec in _RUBY.findall(text):
            name = spec if spec.endswith(".rb") else spec + ".rb"
            yield "/" + posixpath.normpath(posixpath.join(directory, name)) if relative else name
    elif language == "shellscript":
        for spec in _SHELL.findall(text):
            yield "/" + posixpath.normpath(posixpath.join(directory, spec))


def _python(directory: str, text: str) -> Iterable[str]:
    modules: list[tuple[str, list[str]]] = []
    for module, names in _PY_FROM.findall(text):
        names = names.strip("()")
        modules.append((module, [n.split()[0] for n in names.split(",") if n.strip() and n.strip() != "*"]))
    for group in _PY_IMPORT.findall(text):
        modules += [(m.strip().split(" ")[0], []) for m in group.split(",") if m.strip()]
    for module, names in modules:
        dots = len(module) - len(module.lstrip("."))
        stem = module[dots:].replace(".", "/")
        if dots:
            base = directory
            for _ in range(dots - 1):
                base = posixpath.dirname(base)
            root = "/" + posixpath.join(base, stem) if stem else "/" + base
        else:
            root = stem
        for name in names:  # `from pkg import module`
            yield f"{root}/{name}.py"
        if stem or dots:
            yield from (f"{root}.py", f"{root}/__init__.py", f"{root}.pyi")


def _go_imports_end(text: str) -> int:
    match = re.search(r"^(func|type|var|const)\b", text, re.M)
    return match.start() if match else len(text)


def _match(candidate: str, known: set[str], by_base: dict[str, list[str]]) -> list[str]:
    if candidate.startswith("/"):  # from the importing file's directory
        return [candidate[1:]] if candidate[1:] in known else []
    if candidate.endswith("/"):  # a Go package: every file of a directory with that name
        suffix = "/" + candidate[:-1]
        return sorted(p for p in known if p.endswith(".go") and posixpath.dirname(p).endswith(suffix))
    return sorted(
        p for p in by_base.get(posixpath.basename(candidate), ()) if p == candidate or p.endswith("/" + candidate)
    )[:3]
