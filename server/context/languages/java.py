"""Java: its grammar and definitions, and imports as class files and package directories (a package's files see
each other)."""

from __future__ import annotations

import re
from collections.abc import Iterable

from .spec import LanguageSpec

_IMPORT = re.compile(r"^\s*import\s+(?:static\s+)?([\w.]+?)(\.\*)?\s*;", re.M)


def import_candidates(directory: str, text: str) -> Iterable[str]:
    """The classes a file imports (or that hold an imported member), and the packages of `.*` imports."""
    for spec, wildcard in _IMPORT.findall(text):
        parts = spec.split(".")
        if wildcard:  # `import org.x.*;`: the package's classes (or a class's nested ones)
            yield "/".join(parts) + "/"
        for n in range(len(parts), 1, -1):  # a class, or the class holding a static member or nested class
            yield "/".join(parts[:n]) + ".java"


JAVA = LanguageSpec(
    "java",
    (".java",),
    "//",
    ("/*", "*/"),
    ("tree_sitter_java", "language"),
    "(class_declaration name: (identifier) @name) @definition\n"
    "(interface_declaration name: (identifier) @name) @definition\n"
    "(enum_declaration name: (identifier) @name) @definition\n"
    "(record_declaration name: (identifier) @name) @definition\n"
    "(method_declaration name: (identifier) @name) @definition\n"
    "(constructor_declaration name: (identifier) @name) @definition\n",
    import_candidates=import_candidates,
    package_extension=".java",
)
