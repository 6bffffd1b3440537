"""Per-language knowledge, one module per language (python, javascript: JS and TS, go, rust, java, c: C and C++,
lua, ruby, shell), each a `LanguageSpec` (spec.py); registry.py looks them up."""

from .registry import (
    LANGUAGES,
    definitions_query,
    grammar,
    language_for_file,
    language_for_path,
    language_spec,
    resolve_language,
)
from .spec import PLAIN_TEXT, LanguageSpec

__all__ = [
    "LANGUAGES",
    "PLAIN_TEXT",
    "LanguageSpec",
    "definitions_query",
    "grammar",
    "language_for_file",
    "language_for_path",
    "language_spec",
    "resolve_language",
]
