"""C and C++: grammars and definitions, `#include "..."` as files (and on through what the included headers
include), and C++ recognised in a header named `.h`."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable

from .spec import LanguageSpec

_DEFS = """
(function_definition declarator: (function_declarator declarator: (_) @name)) @definition
(function_definition
  declarator: (pointer_declarator declarator: (function_declarator declarator: (_) @name))) @definition
(declaration declarator: (function_declarator declarator: (identifier) @name)) @definition
(declaration
  declarator: (pointer_declarator declarator: (function_declarator declarator: (identifier) @name))) @definition
(struct_specifier name: (type_identifier) @name body: (_)) @definition
(enum_specifier name: (type_identifier) @name body: (_)) @definition
(type_definition declarator: (type_identifier) @name) @definition
(preproc_function_def name: (identifier) @name) @definition
"""
_CPP_EXTRA = """
(class_specifier name: (type_identifier) @name body: (_)) @definition
(field_declaration declarator: (function_declarator declarator: (field_identifier) @name)) @definition
"""
_INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
_INCLUDE_LINE = re.compile(rb'^[ \t]*#[ \t]*include[ \t]+"[^"\n]+"', re.M)
# what only C++ writes at the start of a line: a header named `.h` that holds it is C++
_CPP_HEADER = re.compile(
    rb"^[ \t]*(?:namespace\s+\w+\s*\{|template\s*<|class\s+\w+[^;\n]*\{|using\s+namespace\s)", re.M
)


def import_candidates(directory: str, text: str) -> Iterable[str]:
    """The quoted includes of a file: from its directory, else as a suffix of a workspace path."""
    for spec in _INCLUDE.findall(text):
        yield "/" + posixpath.normpath(posixpath.join(directory, spec))
        yield spec


def cpp_in_header(path: str, head: bytes) -> str | None:
    """"cpp" for a header named `.h` whose first bytes only C++ would write; None otherwise."""
    return "cpp" if path.lower().endswith(".h") and _CPP_HEADER.search(head) else None


C = LanguageSpec(
    "c",
    (".c", ".h"),
    "//",
    ("/*", "*/"),
    ("tree_sitter_c", "language"),
    _DEFS,
    sniff=cpp_in_header,
    import_candidates=import_candidates,
    forwards=_INCLUDE_LINE,
)
CPP = LanguageSpec(
    "cpp",
    (".cc", ".cpp", ".cxx", ".hpp", ".hh", ".hxx", ".ipp"),
    "//",
    ("/*", "*/"),
    ("tree_sitter_cpp", "language"),
    _DEFS + _CPP_EXTRA,
    aliases=("c++",),
    import_candidates=import_candidates,
    forwards=_INCLUDE_LINE,
)
