"""What the server knows about one programming language (`LanguageSpec`): ids, file extensions, comment syntax,
block words, the tree-sitter grammar and its definitions query, docstring and signature rules, and which files its
imports name. Plain data; each language's module fills one in, registry.py looks them up.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..symbols import WorkspaceIndex

PLAIN_TEXT = "plaintext"

# (the importing file's directory, its text) → the paths its imports name: absolute ones (from that directory) start
# with '/', one ending in '/' names a package's directory, others match as suffixes of workspace paths
ImportCandidates = Callable[[str, str], Iterable[str]]


def leading_comments(node: Any) -> list[Any]:
    """The comment nodes right above a definition, in order: its doc in most languages."""
    comments: list[Any] = []
    prev = node.prev_sibling
    row = node.start_point[0]
    while prev is not None and "comment" in prev.type and prev.end_point[0] >= row - 1:
        comments.append(prev)
        row = prev.start_point[0]
        prev = prev.prev_sibling
    return comments[::-1]


@dataclass(frozen=True)
class LanguageSpec:
    """One language: how to recognise it, parse it, document its definitions and follow its imports."""

    id: str  # the LSP language id
    extensions: tuple[str, ...]
    line_comment: str | None
    block_comment: tuple[str, str] | None = None
    grammar: tuple[str, str] | None = None  # (python module, function returning the language pointer)
    definitions: str = ""  # tree-sitter query: @definition on the node, @name on its name
    block_openers: tuple[str, ...] = ("{",)  # line endings that open a block
    block_closers: tuple[str, ...] = ("}",)  # lines that close one
    aliases: tuple[str, ...] = ()
    interpreters: tuple[str, ...] = ()  # the programs of a shebang line that run it (`#!/usr/bin/env bash`)
    # the language a file with these extensions really holds, from its name and first bytes (None: this one)
    sniff: Callable[[str, bytes], str | None] | None = None
    doc_nodes: Callable[[Any], list[Any]] = leading_comments  # the nodes whose text documents a definition
    is_signature_first_line: bool = False  # the header is the first line even where the node has a body field
    import_candidates: ImportCandidates | None = None
    forwards: re.Pattern[bytes] | None = None  # the lines through which a file hands others on to its importers
    package_extension: str | None = None  # a package is a directory whose files of this extension see each other
    # the other files whose definitions count as this one's without an import (Ruby reopening a module)
    reopened_in: Callable[[WorkspaceIndex, str], list[str]] | None = None
