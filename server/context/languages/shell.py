"""Shell scripts: the bash grammar and definitions, block words, interpreters, and `source`/`.` (and shellcheck's
`source=` directive) as files."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable

from .spec import LanguageSpec

# `source "$ROOT/lib/x.bash"`, `. ./x.sh`, and shellcheck's `# shellcheck source=lib/x.bash` directive
_SOURCE = re.compile(
    r"""(?:^|[;&|]|\b(?:then|do|else))[ \t]*(?:source|\.)[ \t]+("[^"\n]*"|'[^'\n]*'|[^\s;&|)]+)""", re.M
)
_VARIABLE = re.compile(r"\$(?:\{[^}]*\}|\([^)]*\)|\w+|.)")
_SHELLCHECK = re.compile(r"#[ \t]*shellcheck[ \t][^\n]*?\bsource=(\S+)")


def import_candidates(directory: str, text: str) -> Iterable[str]:
    """The files a script sources."""
    for spec in _SHELLCHECK.findall(text) + _SOURCE.findall(text):
        yield from _sourced(directory, spec.strip("'\""))


def _sourced(directory: str, spec: str) -> Iterable[str]:
    """A sourced path: from the script's directory, else as a suffix; only its part after the last variable when it
    has some (`"$ROOT/$LIB/core/x.bash"` is some `core/x.bash`, wherever that is)."""
    if "$" in spec:
        tail = _VARIABLE.split(spec)[-1]
        if not tail.startswith("/") or "$" in tail:
            return
        spec = tail[1:]
    if spec.startswith("/"):
        yield spec.lstrip("/")  # an absolute path: its tail may still be in the workspace
        return
    yield "/" + posixpath.normpath(posixpath.join(directory, spec))
    tail = posixpath.normpath(spec)
    while tail.startswith("../"):
        tail = tail[3:]
    if "/" in tail:  # `lib/x.bash` from wherever the script runs; a bare `x.sh` could be any file of that name
        yield tail


SHELL = LanguageSpec(
    "shellscript",
    (".sh", ".bash"),
    "#",
    None,
    ("tree_sitter_bash", "language"),
    "(function_definition name: (word) @name) @definition\n",
    block_openers=("{", "then", "do", "else", "in"),
    block_closers=("}", "fi", "done", "esac", "else", "elif"),
    aliases=("bash", "sh", "zsh"),
    interpreters=("sh", "bash", "dash", "ksh", "zsh"),
    import_candidates=import_candidates,
)
