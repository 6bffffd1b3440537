"""Rust: its grammar and definitions, and `mod` declarations and `use crate::/super::/self::` paths as files."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable

from .spec import LanguageSpec

_MOD = re.compile(r"^\s*(?:pub\s+)?mod\s+(\w+)\s*;", re.M)
_USE = re.compile(r"^\s*(?:pub\s+)?use\s+(crate|super|self)((?:::\w+)+)", re.M)


def import_candidates(directory: str, text: str) -> Iterable[str]:
    """The module files a file declares or uses (`name.rs` or `name/mod.rs`), longest path first."""
    for name in _MOD.findall(text):
        yield from ("/" + posixpath.join(directory, f"{name}.rs"), "/" + posixpath.join(directory, name, "mod.rs"))
    for root, path in _USE.findall(text):
        parts = path.strip(":").split("::")
        for n in range(len(parts), 0, -1):
            stem = "/".join(parts[:n])
            if root == "crate":
                yield from (f"{stem}.rs", f"{stem}/mod.rs")
            else:
                base = directory if root == "self" else posixpath.dirname(directory)
                yield from ("/" + posixpath.join(base, f"{stem}.rs"), "/" + posixpath.join(base, stem, "mod.rs"))


RUST = LanguageSpec(
    "rust",
    (".rs",),
    "//",
    ("/*", "*/"),
    ("tree_sitter_rust", "language"),
    "(function_item name: (identifier) @name) @definition\n"
    "(function_signature_item name: (identifier) @name) @definition\n"
    "(struct_item name: (type_identifier) @name) @definition\n"
    "(enum_item name: (type_identifier) @name) @definition\n"
    "(trait_item name: (type_identifier) @name) @definition\n"
    "(type_item name: (type_identifier) @name) @definition\n"
    "(macro_definition name: (identifier) @name) @definition\n",
    import_candidates=import_candidates,
)
