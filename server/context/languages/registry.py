"""The languages the server knows, looked up by LSP id, file extension, shebang or a file's first bytes; loading
a language's grammar and definitions query is the only work. What each language is lives in its own module.
"""

from __future__ import annotations

import functools
import importlib
from pathlib import PurePath
from typing import Any

from . import c, go, java, javascript, lua, python, ruby, rust, shell
from .spec import PLAIN_TEXT, LanguageSpec

LANGUAGES: tuple[LanguageSpec, ...] = (
    python.PYTHON,
    javascript.JAVASCRIPT,
    javascript.TYPESCRIPT,
    javascript.TSX,
    go.GO,
    rust.RUST,
    java.JAVA,
    c.C,
    c.CPP,
    lua.LUA,
    ruby.RUBY,
    shell.SHELL,
)

_BY_ID = {spec.id: spec for spec in LANGUAGES} | {alias: spec for spec in LANGUAGES for alias in spec.aliases}
_BY_EXTENSION = {ext: spec for spec in LANGUAGES for ext in spec.extensions}
_BY_INTERPRETER = {name: spec.id for spec in LANGUAGES for name in spec.interpreters}
_PLAIN = LanguageSpec(PLAIN_TEXT, (), None, block_closers=())


def language_spec(language_id: str) -> LanguageSpec:
    """The spec of an LSP language id; plain text for ids without one."""
    return _BY_ID.get(language_id.lower(), _PLAIN)


def language_for_path(path: str) -> str:
    """The language id of a file name, from its extension; plain text when unknown."""
    spec = _BY_EXTENSION.get(PurePath(path).suffix.lower())
    return spec.id if spec is not None else PLAIN_TEXT


def language_for_file(path: str, head: bytes) -> str:
    """The language of a file on disk from its name, or from its first bytes where the name does not settle it: a
    shebang on a script without an extension, C++ in a header named `.h`."""
    language = language_for_path(path)
    sniff = language_spec(language).sniff
    if sniff is not None and (held := sniff(path, head)) is not None:
        return held
    if language == PLAIN_TEXT and head.startswith(b"#!") and not PurePath(path).suffix:
        words = head[2 : head.find(b"\n") if b"\n" in head else len(head)].decode("utf-8", errors="replace").split()
        if words and words[0].endswith("/env"):
            words = [w for w in words[1:] if not w.startswith("-")]  # `#!/usr/bin/env -S bash -e`
        interpreter = PurePath(words[0]).name.rstrip("0123456789.") if words else ""
        return _BY_INTERPRETER.get(interpreter, PLAIN_TEXT)
    return language


def resolve_language(language_id: str | None, path: str) -> str:
    """The language id the client sent, or the one its file name says when the client's id is unknown."""
    if language_id and language_spec(language_id).id != PLAIN_TEXT:
        return language_spec(language_id).id
    return language_for_path(path)


@functools.cache
def grammar(language_id: str) -> Any | None:
    """The tree-sitter `Language` of a language id, or None for plain text or a grammar that will not load."""
    spec = language_spec(language_id)
    if spec.grammar is None:
        return None
    from tree_sitter import Language

    module_name, function = spec.grammar
    try:
        module = importlib.import_module(module_name)
        return Language(getattr(module, function)())
    except (ImportError, AttributeError, ValueError):
        return None


@functools.cache
def definitions_query(language_id: str) -> Any | None:
    """The compiled query that finds definitions in a language, or None."""
    lang = grammar(language_id)
    spec = language_spec(language_id)
    if lang is None or not spec.definitions:
        return None
    from tree_sitter import Query

    return Query(lang, spec.definitions)
