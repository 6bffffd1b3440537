"""JavaScript and TypeScript (and their JSX forms): grammars and definitions, and imports as workspace paths
(relative, under a tsconfig `baseUrl`, and on through what an `index.ts` re-exports)."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable

from .spec import LanguageSpec

_DEFS = """
(function_declaration name: (identifier) @name) @definition
(generator_function_declaration name: (identifier) @name) @definition
(method_definition name: (property_identifier) @name) @definition
(lexical_declaration
  (variable_declarator name: (identifier) @name value: [(arrow_function) (function_expression)])) @definition
"""
_CLASS = "(class_declaration name: (identifier) @name) @definition\n"
_TS_EXTRA = """
(class_declaration name: (type_identifier) @name) @definition
(abstract_class_declaration name: (type_identifier) @name) @definition
(interface_declaration name: (type_identifier) @name) @definition
(type_alias_declaration name: (type_identifier) @name) @definition
(enum_declaration name: (identifier) @name) @definition
(function_signature name: (identifier) @name) @definition
(method_signature name: (property_identifier) @name) @definition
"""
_IMPORT = re.compile(r"""(?:from|import|require\()\s*['"](\.{1,2}/[^'"]+|\w[\w\-.]*/[\w\-./]+)['"]""")
_REEXPORT = re.compile(rb"""^[ \t]*export\b[^;'"]*?\bfrom\s*['"][^'"\n]+['"]""", re.M)  # export * from './x'
_EXTENSIONS = ("", ".ts", ".tsx", ".js", ".jsx", ".mjs", ".cjs", ".d.ts", "/index.ts", "/index.tsx", "/index.js")


def import_candidates(directory: str, text: str) -> Iterable[str]:
    """The modules a file imports or requires, with each extension a module may have."""
    for spec in _IMPORT.findall(text):
        if spec.startswith("."):
            base = posixpath.normpath(posixpath.join(directory, spec))
            yield from ("/" + base + ext for ext in _EXTENSIONS)
        elif "/" in spec:  # `components/Button` under a tsconfig `baseUrl`, found as a suffix of a workspace path
            yield from (spec + ext for ext in _EXTENSIONS[1:])


JAVASCRIPT = LanguageSpec(
    "javascript",
    (".js", ".mjs", ".cjs", ".jsx"),
    "//",
    ("/*", "*/"),
    ("tree_sitter_javascript", "language"),
    _DEFS + _CLASS,
    aliases=("javascriptreact",),
    interpreters=("node",),
    import_candidates=import_candidates,
    forwards=_REEXPORT,
)
TYPESCRIPT = LanguageSpec(
    "typescript",
    (".ts", ".mts", ".cts"),
    "//",
    ("/*", "*/"),
    ("tree_sitter_typescript", "language_typescript"),
    _DEFS + _TS_EXTRA,
    import_candidates=import_candidates,
    forwards=_REEXPORT,
)
TSX = LanguageSpec(
    "typescriptreact",
    (".tsx",),
    "//",
    ("/*", "*/"),
    ("tree_sitter_typescript", "language_tsx"),
    _DEFS + _TS_EXTRA,
    aliases=("tsx",),
    import_candidates=import_candidates,
    forwards=_REEXPORT,
)
