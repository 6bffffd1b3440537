"""Go: its grammar and definitions, and imports as package directories (a package's files see each other)."""

from __future__ import annotations

import re
from collections.abc import Iterable

from .spec import LanguageSpec

_IMPORT = re.compile(r'"([\w.\-/]+)"')
_DECLARATION = re.compile(r"^(func|type|var|const)\b", re.M)


def import_candidates(directory: str, text: str) -> Iterable[str]:
    """The package directories of the import block (the quoted paths before the first declaration)."""
    match = _DECLARATION.search(text)
    for spec in _IMPORT.findall(text[: match.start() if match else len(text)]):
        yield spec.rsplit("/", 1)[-1] + "/"


GO = LanguageSpec(
    "go",
    (".go",),
    "//",
    ("/*", "*/"),
    ("tree_sitter_go", "language"),
    "(function_declaration name: (identifier) @name) @definition\n"
    "(method_declaration name: (field_identifier) @name) @definition\n"
    "(type_declaration (type_spec name: (type_identifier) @name)) @definition\n",
    import_candidates=import_candidates,
    package_extension=".go",
)
