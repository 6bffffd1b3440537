"""What the server knows about each programming language: ids, file extensions, comment syntax, block words,
the tree-sitter grammar and the queries that find definitions. Plain tables; loading a grammar is the only work.
"""

from __future__ import annotations

import functools
import importlib
import re
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

PLAIN_TEXT = "plaintext"


@dataclass(frozen=True)
class LanguageSpec:
    """One language: how to recognise it and parse it."""

    id: str  # the LSP language id
    extensions: tuple[str, ...]
    line_comment: str | None
    block_comment: tuple[str, str] | None = None
    grammar: tuple[str, str] | None = None  # (python module, function returning the language pointer)
    definitions: str = ""  # tree-sitter query: @definition on the node, @name on its name
    block_openers: tuple[str, ...] = ("{",)  # line endings that open a block
    block_closers: tuple[str, ...] = ("}",)  # lines that close one
    aliases: tuple[str, ...] = ()


_JS_DEFS = """
(function_declaration name: (identifier) @name) @definition
(generator_function_declaration name: (identifier) @name) @definition
(method_definition name: (property_identifier) @name) @definition
(lexical_declaration
  (variable_declarator name: (identifier) @name value: [(arrow_function) (function_expression)])) @definition
"""
_JS_CLASS = "(class_declaration name: (identifier) @name) @definition\n"
_TS_EXTRA = """
(class_declaration name: (type_identifier) @name) @definition
(abstract_class_declaration name: (type_identifier) @name) @definition
(interface_declaration name: (type_identifier) @name) @definition
(type_alias_declaration name: (type_identifier) @name) @definition
(enum_declaration name: (identifier) @name) @definition
(function_signature name: (identifier) @name) @definition
(method_signature name: (property_identifier) @name) @definition
"""
_C_DEFS = """
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

LANGUAGES: tuple[LanguageSpec, ...] = (
    LanguageSpec(
        "python",
        (".py", ".pyi"),
        "#",
        ('"""', '"""'),
        ("tree_sitter_python", "language"),
        "(function_definition name: (identifier) @name) @definition\n"
        "(class_definition name: (identifier) @name) @definition\n",
        block_openers=(":",),
        block_closers=(),
    ),
    LanguageSpec(
        "javascript",
        (".js", ".mjs", ".cjs", ".jsx"),
        "//",
        ("/*", "*/"),
        ("tree_sitter_javascript", "language"),
        _JS_DEFS + _JS_CLASS,
        aliases=("javascriptreact",),
    ),
    LanguageSpec(
        "typescript",
        (".ts", ".mts", ".cts"),
        "//",
        ("/*", "*/"),
        ("tree_sitter_typescript", "language_typescript"),
        _JS_DEFS + _TS_EXTRA,
    ),
    LanguageSpec(
        "typescriptreact",
        (".tsx",),
        "//",
        ("/*", "*/"),
        ("tree_sitter_typescript", "language_tsx"),
        _JS_DEFS + _TS_EXTRA,
        aliases=("tsx",),
    ),
    LanguageSpec(
        "go",
        (".go",),
        "//",
        ("/*", "*/"),
        ("tree_sitter_go", "language"),
        "(function_declaration name: (identifier) @name) @definition\n"
        "(method_declaration name: (field_identifier) @name) @definition\n"
        "(type_declaration (type_spec name: (type_identifier) @name)) @definition\n",
    ),
    LanguageSpec(
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
    ),
    LanguageSpec(
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
    ),
    LanguageSpec("c", (".c", ".h"), "//", ("/*", "*/"), ("tree_sitter_c", "language"), _C_DEFS),
    LanguageSpec(
        "cpp",
        (".cc", ".cpp", ".cxx", ".hpp", ".hh", ".hxx", ".ipp"),
        "//",
        ("/*", "*/"),
        ("tree_sitter_cpp", "language"),
        _C_DEFS + _CPP_EXTRA,
        aliases=("c++",),
    ),
    LanguageSpec(
        "lua",
        (".lua",),
        "--",
        ("--[[", "]]"),
        ("tree_sitter_lua", "language"),
        "(function_declaration name: (_) @name) @definition\n",
        block_openers=("then", "do", ")", "{", "else", "repeat"),
        block_closers=("end", "}", "until", "else"),
    ),
    LanguageSpec(
        "ruby",
        (".rb", ".rake", ".gemspec"),
        "#",
        ("=begin", "=end"),
        ("tree_sitter_ruby", "language"),
        "(method name: (_) @name) @definition\n"
        "(singleton_method name: (_) @name) @definition\n"
        "(class name: (constant) @name) @definition\n"
        "(module name: (constant) @name) @definition\n",
        block_openers=("do", "then", "{", "|", "else", "begin"),
        block_closers=("end", "}", "else", "elsif"),
    ),
    LanguageSpec(
        "shellscript",
        (".sh", ".bash"),
        "#",
        None,
        ("tree_sitter_bash", "language"),
        "(function_definition name: (word) @name) @definition\n",
        block_openers=("{", "then", "do", "else", "in"),
        block_closers=("}", "fi", "done", "esac", "else", "elif"),
        aliases=("bash", "sh", "zsh"),
    ),
)

_INTERPRETERS = {
    "sh": "shellscript",
    "bash": "shellscript",
    "dash": "shellscript",
    "ksh": "shellscript",
    "zsh": "shellscript",
    "python": "python",
    "node": "javascript",
    "ruby": "ruby",
    "lua": "lua",
    "luajit": "lua",
}
# what only C++ writes at the start of a line: a header named `.h` that holds it is C++
_CPP_HEADER = re.compile(
    rb"^[ \t]*(?:namespace\s+\w+\s*\{|template\s*<|class\s+\w+[^;\n]*\{|using\s+namespace\s)", re.M
)
_BY_ID = {spec.id: spec for spec in LANGUAGES} | {alias: spec for spec in LANGUAGES for alias in spec.aliases}
_BY_EXTENSION = {ext: spec for spec in LANGUAGES for ext in spec.extensions}
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
    if language == "c" and path.lower().endswith(".h") and _CPP_HEADER.search(head):
        return "cpp"
    if language == PLAIN_TEXT and head.startswith(b"#!") and not PurePath(path).suffix:
        words = head[2 : head.find(b"\n") if b"\n" in head else len(head)].decode("utf-8", errors="replace").split()
        if words and words[0].endswith("/env"):
            words = [w for w in words[1:] if not w.startswith("-")]  # `#!/usr/bin/env -S bash -e`
        interpreter = PurePath(words[0]).name.rstrip("0123456789.") if words else ""
        return _INTERPRETERS.get(interpreter, PLAIN_TEXT)
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
