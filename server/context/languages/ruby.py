"""Ruby: its grammar and definitions, block words, one-line signatures, `require` and `autoload` as files, and the
files that reopen a file's nested modules and classes."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

from .spec import LanguageSpec

if TYPE_CHECKING:
    from ..symbols import WorkspaceIndex

_REQUIRE = re.compile(r"""(?:require(_relative)?|autoload\s*\(?\s*:\w+\s*,)\s*\(?\s*['"]([\w./\-]+)['"]""")


def import_candidates(directory: str, text: str) -> Iterable[str]:
    """The files a file requires (`require_relative` from its directory) or autoloads."""
    for relative, spec in _REQUIRE.findall(text):
        name = spec if spec.endswith(".rb") else spec + ".rb"
        yield "/" + posixpath.normpath(posixpath.join(directory, name)) if relative else name


def reopening(index: WorkspaceIndex, path: str) -> list[str]:
    """The other files that reopen a nested module or class of a Ruby file (`class Thor; module Actions`): the
    methods they add are this file's too, with no `require` between them."""
    nested = {d.name for d in index.definitions_in(path) if d.is_container and d.depth > 0}
    found = {d.path for n in nested for d in index.definitions_named(n) if d.is_container and d.depth > 0}
    return sorted(found - {path})


RUBY = LanguageSpec(
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
    interpreters=("ruby",),
    is_signature_first_line=True,  # no brace ends the header: the body field starts after it, on a later line
    import_candidates=import_candidates,
    reopened_in=reopening,
)
