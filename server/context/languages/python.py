"""Python: its grammar and definitions, docstrings (the string that opens a body) and `import`/`from ... import`
statements as workspace paths."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable
from typing import Any

from .spec import LanguageSpec

_FROM = re.compile(r"^[ \t]*from[ \t]+(\.*[\w.]*)[ \t]+import[ \t]+(\([^)]*\)|[\w, \t*]*)", re.M)
_IMPORT = re.compile(r"^[ \t]*import[ \t]+([\w., \t]+)", re.M)


def docstring(node: Any) -> list[Any]:
    """The docstring of a definition: the string statement its body starts with, if any."""
    body = node.child_by_field_name("body")
    first = body.named_children[0] if body is not None and body.named_children else None
    if (
        first is not None
        and first.type == "expression_statement"
        and first.named_children
        and first.named_children[0].type == "string"
    ):
        return [first]
    return []


def import_candidates(directory: str, text: str) -> Iterable[str]:
    """The modules and packages a file imports, relative ones from its directory."""
    modules: list[tuple[str, list[str]]] = []
    for module, names in _FROM.findall(text):
        names = names.strip("()")
        modules.append((module, [n.split()[0] for n in names.split(",") if n.strip() and n.strip() != "*"]))
    for group in _IMPORT.findall(text):
        modules += [(m.strip().split(" ")[0], []) for m in group.split(",") if m.strip()]
    for module, names in modules:
        dots = len(module) - len(module.lstrip("."))
        stem = module[dots:].replace(".", "/")
        if dots:
            base = directory
            for _ in range(dots - 1):
                base = posixpath.dirname(base)
            root = "/" + posixpath.join(base, stem) if stem else "/" + base
        else:
            root = stem
        for name in names:  # `from pkg import module`
            yield f"{root}/{name}.py"
        if stem or dots:
            yield from (f"{root}.py", f"{root}/__init__.py", f"{root}.pyi")


PYTHON = LanguageSpec(
    "python",
    (".py", ".pyi"),
    "#",
    ('"""', '"""'),
    ("tree_sitter_python", "language"),
    "(function_definition name: (identifier) @name) @definition\n"
    "(class_definition name: (identifier) @name) @definition\n",
    block_openers=(":",),
    block_closers=(),
    interpreters=("python",),
    doc_nodes=docstring,
    import_candidates=import_candidates,
)
