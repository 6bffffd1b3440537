"""Lua: its grammar and definitions, block words, and `require` and modules used as globals as files."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

from .spec import LanguageSpec

_REQUIRE = re.compile(r"""require\s*\(?\s*['"]([\w./\-]+)['"]""")
_DOTTED = re.compile(r"(?<![\w.:])([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+)")  # vim.lsp.util.apply_text_edits
MAX_CHAINS = 200  # distinct dotted names looked up as module paths


def import_candidates(directory: str, text: str) -> Iterable[str]:
    """The modules a file requires, then those it reaches as globals (`vim.lsp.util.foo()` with vim/lsp/util.lua
    in the workspace), most used first."""
    for spec in _REQUIRE.findall(text):
        stem = spec.replace(".", "/")
        yield from (f"{stem}.lua", f"{stem}/init.lua")
    chains = Counter(_DOTTED.findall(text))
    for chain, _ in chains.most_common(MAX_CHAINS):
        parts = chain.split(".")
        for n in range(len(parts), 1, -1):
            stem = "/".join(parts[:n])
            yield from (f"{stem}.lua", f"{stem}/init.lua")


LUA = LanguageSpec(
    "lua",
    (".lua",),
    "--",
    ("--[[", "]]"),
    ("tree_sitter_lua", "language"),
    "(function_declaration name: (_) @name) @definition\n",
    block_openers=("then", "do", ")", "{", "else", "repeat"),
    block_closers=("end", "}", "until", "else"),
    interpreters=("lua", "luajit"),
    import_candidates=import_candidates,
)
