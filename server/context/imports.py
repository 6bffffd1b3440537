"""Resolving a file's imports to other files of the workspace: Python modules, JS/TS imports (relative, under a
`baseUrl`, and on through what an `index.ts` re-exports), Go and Java packages, Rust modules, C/C++ includes (and
what the included headers include), Lua `require` and modules used as globals, Ruby `require` and `autoload`, shell
`source`. Works on the text and a set of known paths; touches no disk.
"""

from __future__ import annotations

import posixpath
import re
from collections import Counter
from collections.abc import Callable, Iterable

_PY_FROM = re.compile(r"^[ \t]*from[ \t]+(\.*[\w.]*)[ \t]+import[ \t]+(\([^)]*\)|[\w, \t*]*)", re.M)
_PY_IMPORT = re.compile(r"^[ \t]*import[ \t]+([\w., \t]+)", re.M)
_JS = re.compile(r"""(?:from|import|require\()\s*['"](\.{1,2}/[^'"]+|\w[\w\-.]*/[\w\-./]+)['"]""")
_GO = re.compile(r'"([\w.\-/]+)"')
_RUST_MOD = re.compile(r"^\s*(?:pub\s+)?mod\s+(\w+)\s*;", re.M)
_RUST_USE = re.compile(r"^\s*(?:pub\s+)?use\s+(crate|super|self)((?:::\w+)+)", re.M)
_JAVA = re.compile(r"^\s*import\s+(?:static\s+)?([\w.]+?)(\.\*)?\s*;", re.M)
_INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
_INCLUDE_LINE = re.compile(rb'^[ \t]*#[ \t]*include[ \t]+"[^"\n]+"', re.M)
_REEXPORT = re.compile(rb"""^[ \t]*export\b[^;'"]*?\bfrom\s*['"][^'"\n]+['"]""", re.M)  # export * from './x'
_FORWARDING = ("c", "cpp", "javascript", "typescript", "typescriptreact")
_LUA = re.compile(r"""require\s*\(?\s*['"]([\w./\-]+)['"]""")
_LUA_DOTTED = re.compile(r"(?<![\w.:])([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+)")  # vim.lsp.util.apply_text_edits
_RUBY = re.compile(r"""(?:require(_relative)?|autoload\s*\(?\s*:\w+\s*,)\s*\(?\s*['"]([\w./\-]+)['"]""")
# `source "$ROOT/lib/x.bash"`, `. ./x.sh`, and shellcheck's `# shellcheck source=lib/x.bash` directive
_SHELL = re.compile(
    r"""(?:^|[;&|]|\b(?:then|do|else))[ \t]*(?:source|\.)[ \t]+("[^"\n]*"|'[^'\n]*'|[^\s;&|)]+)""", re.M
)
_SHELL_VARIABLE = re.compile(r"\$(?:\{[^}]*\}|\([^)]*\)|\w+|.)")
_SHELLCHECK = re.compile(r"#[ \t]*shellcheck[ \t][^\n]*?\bsource=(\S+)")

MAX_FORWARDED = 64  # imported files after which what they include or re-export is no longer followed
MAX_LUA_CHAINS = 200  # distinct dotted names looked up as module paths

_JS_EXTENSIONS = ("", ".ts", ".tsx", ".js", ".jsx", ".mjs", ".cjs", ".d.ts", "/index.ts", "/index.tsx", "/index.js")


def imported_paths(
    path: str, language: str, text: str, known: Iterable[str], forwards_of: Callable[[str], str] | None = None
) -> list[str]:
    """The workspace files `path` imports, nearest first; `known` holds every indexed path. For C and C++,
    `forwards_of` gives the `#include` lines of an indexed file, and what the included headers include counts too;
    likewise through the `export ... from` lines of a JS/TS module (an `index.ts` that re-exports its folder)."""
    known_set = set(known)
    by_base: dict[str, list[str]] = {}
    for p in known_set:
        by_base.setdefault(posixpath.basename(p), []).append(p)
    found: list[str] = []
    seen = {path}
    pending = [(path, text)]
    while pending:  # breadth first: direct imports before what they hand on
        importer, importer_text = pending.pop(0)
        for candidate in _candidates(posixpath.dirname(importer), language, importer_text):
            for match in _match(candidate, known_set, by_base, language):
                if match not in seen:
                    seen.add(match)
                    found.append(match)
                    if forwards_of is not None and language in _FORWARDING and len(found) < MAX_FORWARDED:
                        pending.append((match, forwards_of(match)))
    directory = posixpath.dirname(path)
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
            if spec.startswith("."):
                base = posixpath.normpath(posixpath.join(directory, spec))
                yield from ("/" + base + ext for ext in _JS_EXTENSIONS)
            elif "/" in spec:  # `components/Button` under a tsconfig `baseUrl`, found as a suffix of a workspace path
                yield from (spec + ext for ext in _JS_EXTENSIONS[1:])
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
        for spec, wildcard in _JAVA.findall(text):
            parts = spec.split(".")
            if wildcard:  # `import org.x.*;`: the package's classes (or a class's nested ones)
                yield "/".join(parts) + "/"
            for n in range(len(parts), 1, -1):  # a class, or the class holding a static member or nested class
                yield "/".join(parts[:n]) + ".java"
    elif language in ("c", "cpp"):
        for spec in _INCLUDE.findall(text):
            yield "/" + posixpath.normpath(posixpath.join(directory, spec))
            yield spec
    elif language == "lua":
        for spec in _LUA.findall(text):
            stem = spec.replace(".", "/")
            yield from (f"{stem}.lua", f"{stem}/init.lua")
        # modules reached as globals (`vim.lsp.util.foo()` with vim/lsp/util.lua in the workspace), most used first
        chains = Counter(_LUA_DOTTED.findall(text))
        for chain, _ in chains.most_common(MAX_LUA_CHAINS):
            parts = chain.split(".")
            for n in range(len(parts), 1, -1):
                stem = "/".join(parts[:n])
                yield from (f"{stem}.lua", f"{stem}/init.lua")
    elif language == "ruby":
        for relative, spec in _RUBY.findall(text):
            name = spec if spec.endswith(".rb") else spec + ".rb"
            yield "/" + posixpath.normpath(posixpath.join(directory, name)) if relative else name
    elif language == "shellscript":
        for spec in _SHELLCHECK.findall(text) + _SHELL.findall(text):
            yield from _shell(directory, spec.strip("'\""))


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


def forwarded_imports(language: str, source: bytes) -> str:
    """The lines through which a file hands other files on to its importers (C/C++ `#include "..."`, JS/TS
    `export ... from`): what `imported_paths` needs of it; empty for other languages."""
    pattern = _INCLUDE_LINE if language in ("c", "cpp") else _REEXPORT if language in _FORWARDING else None
    if pattern is None:
        return ""
    return "\n".join(m.decode("utf-8", errors="replace") for m in pattern.findall(source))


def _shell(directory: str, spec: str) -> Iterable[str]:
    """A sourced path: from the script's directory, else as a suffix; only its part after the last variable when it
    has some (`"$ROOT/$LIB/core/x.bash"` is some `core/x.bash`, wherever that is)."""
    if "$" in spec:
        tail = _SHELL_VARIABLE.split(spec)[-1]
        if not tail.startswith("/") or "$" in tail:
            return
        spec = tail[1:]
    if spec.startswith("/"):
        yield spec.lstrip("/")  # an absolute path: its tail may still be in the workspace
        return
    yield "/" + posixpath.normpath(posixpath.join(directory, spec))
    tail = posixpath.normpath(spec)
    while tail.startswith("../"):
        tail = tail[3:]
    if "/" in tail:  # `lib/x.bash` from wherever the script runs; a bare `x.sh` could be any file of that name
        yield tail


def _go_imports_end(text: str) -> int:
    match = re.search(r"^(func|type|var|const)\b", text, re.M)
    return match.start() if match else len(text)


def _match(candidate: str, known: set[str], by_base: dict[str, list[str]], language: str) -> list[str]:
    if candidate.startswith("/"):  # from the importing file's directory
        return [candidate[1:]] if candidate[1:] in known else []
    if candidate.endswith("/"):  # a Go or Java package: every file of a directory with that name
        suffix, extension = "/" + candidate[:-1], ".java" if language == "java" else ".go"
        return sorted(p for p in known if p.endswith(extension) and posixpath.dirname(p).endswith(suffix))
    return sorted(
        p for p in by_base.get(posixpath.basename(candidate), ()) if p == candidate or p.endswith("/" + candidate)
    )[:3]
