"""Cross-file context for training prompts: the signatures and docstrings of what a Python file imports from other
files of the corpus, rendered the way the server renders workspace definitions (a `# path` comment, then each
definition's header and docstring head), so the model learns to read the `<|context|>` part of the prompt.

Uses only `ast`: the engine knows nothing about tree-sitter.
"""

from __future__ import annotations

import ast
import os
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import PurePosixPath

from .corpus import SourceFile

MAX_DOC_CHARS = 160  # as the server cuts docstrings
MAX_DOC_LINES = 3
MAX_SIGNATURE_CHARS = 400
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class ModuleDefinition:
    """One top-level definition (or a method of a top-level class) of a module, rendered for a prompt."""

    name: str
    owner: str  # the class a method belongs to, or "" for a top-level definition
    line: int
    text: str


def module_name(path: str) -> str | None:
    """The dotted module a corpus path imports as (`pkg/sub/__init__.py` → `pkg.sub`), or None."""
    parts = list(PurePosixPath(path).with_suffix("").parts)
    if parts and parts[-1] == "__init__":
        parts.pop()
    if not parts or not all(part.isidentifier() for part in parts):
        return None
    return ".".join(parts)


def _doc_head(doc: str) -> str:
    lines = doc.split("\n")
    head = "\n".join(lines[:MAX_DOC_LINES])[:MAX_DOC_CHARS]
    if head == doc:
        return doc
    closer = '"""' if doc.lstrip().startswith('"""') else "'''" if doc.lstrip().startswith("'''") else ""
    return f"{head.rstrip()} ...{closer}"


def _render(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef, lines: list[str]) -> str:
    first = node.decorator_list[0].lineno if node.decorator_list else node.lineno
    body = node.body[0]
    if body.lineno == node.lineno:  # `def f(): ...` on one line
        return lines[node.lineno - 1][:MAX_SIGNATURE_CHARS]
    header = lines[first - 1 : body.lineno - 1]
    while header and (not header[-1].strip() or header[-1].lstrip().startswith("#")):
        header.pop()  # comments before the first statement are not part of the header
    signature = "\n".join(header).rstrip()[:MAX_SIGNATURE_CHARS]
    doc = ""
    if isinstance(body, ast.Expr) and isinstance(body.value, ast.Constant) and isinstance(body.value.value, str):
        end = body.end_lineno or body.lineno
        doc = _doc_head("\n".join(lines[body.lineno - 1 : end]))
    return f"{signature}\n{doc}" if doc else signature


def module_definitions(text: str) -> dict[str, list[ModuleDefinition]]:
    """Top-level functions and classes by name; a class's entry also lists its methods after it."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError):
        return {}
    lines = text.split("\n")
    found: dict[str, list[ModuleDefinition]] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            entry = [ModuleDefinition(node.name, "", node.lineno, _render(node, lines))]
            if isinstance(node, ast.ClassDef):
                entry += [
                    ModuleDefinition(child.name, node.name, child.lineno, _render(child, lines))
                    for child in node.body
                    if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
                ]
            found[node.name] = entry
    return found


FROM_IMPORT = re.compile(r"^[ \t]*from[ \t]+(\.*)([\w.]*)[ \t]+import[ \t]+(\([^)]*\)|[^\n#;]*)", re.MULTILINE)
PLAIN_IMPORT = re.compile(r"^[ \t]*import[ \t]+([\w. \t,]+)", re.MULTILINE)


def _names(listed: str) -> list[str]:
    parts = listed.replace("(", " ").replace(")", " ").replace("\\", " ").split(",")
    return [p.split()[0] for p in parts if p.split() and p.split()[0].isidentifier()]


def imported_names(text: str, module: str, is_package: bool) -> list[tuple[str, str]]:
    """(module, name) pairs of `from m import name` and (module, "") of `import m` in a file, relative imports
    resolved against `module` (the importing file's own dotted name). A regex, not a parse: it runs on every file."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    pairs: list[tuple[str, str]] = []
    for match in FROM_IMPORT.finditer(text):
        dots, target, listed = match.groups()
        if dots:
            if len(dots) > len(package):
                continue
            target = ".".join([*package[: len(package) - len(dots) + 1], *([target] if target else [])])
        for name in _names(listed):
            pairs.append((target, name))
            pairs.append((f"{target}.{name}", ""))  # `from pkg import submodule`
    for match in PLAIN_IMPORT.finditer(text):
        pairs += [(name, "") for name in (p.split()[0] for p in match.group(1).split(",") if p.split())]
    return pairs


class ContextIndex:
    """The definitions of every Python file of a corpus, by module name, parsed on first use."""

    def __init__(self, files: Sequence[SourceFile]) -> None:
        self._files = {name: f for f in files if f.language == "python" and (name := module_name(f.path)) is not None}
        self._parsed: dict[str, dict[str, list[ModuleDefinition]]] = {}

    def definitions(self, module: str) -> dict[str, list[ModuleDefinition]]:
        if module not in self._parsed:
            source = self._files.get(module)
            self._parsed[module] = module_definitions(source.text) if source is not None else {}
        return self._parsed[module]

    def path_of(self, module: str) -> str | None:
        source = self._files.get(module)
        return source.path if source is not None else None

    def context_for(self, source: SourceFile, max_chars: int) -> str:
        """The imported definitions a file uses, most used first, grouped by file, within `max_chars`."""
        own = module_name(source.path)
        if source.language != "python" or own is None:
            return ""
        uses = Counter(IDENTIFIER.findall(source.text))
        is_package = PurePosixPath(source.path).stem == "__init__"
        picked: dict[str, list[str]] = {}
        candidates: list[tuple[int, str, str]] = []
        seen: set[tuple[str, str]] = set()
        for target, name in dict.fromkeys(imported_names(source.text, own, is_package)):
            target_file = self._files.get(target)
            if target == own or target_file is None or target_file.distribution != source.distribution:
                continue
            defs = self.definitions(target)
            for entry in [defs.get(name, [])] if name else list(defs.values()):
                if entry and uses[entry[0].name] and (target, entry[0].name) not in seen:
                    seen.add((target, entry[0].name))  # `from m import f` and `import m` both reach f
                    candidates.append((uses[entry[0].name], target, _unit(entry, uses)))
        used = 0
        for _, target, unit in sorted(candidates, key=lambda c: -c[0]):
            cost = len(unit) + 1
            if used + cost <= max_chars:
                picked.setdefault(target, []).append(unit)
                used += cost
        blocks = []
        for target, units in picked.items():
            path = self.path_of(target) or target
            blocks.append(f"# {_relative(path, source.path)}\n" + "\n".join(units))
        return "\n\n".join(blocks) + ("\n" if blocks else "")


def _unit(entry: list[ModuleDefinition], uses: Counter[str], max_methods: int = 3) -> str:
    """A definition as it goes into the context: a class with its __init__ and its most used methods."""
    head, methods = entry[0], entry[1:]
    used = sorted((m for m in methods if m.name != "__init__" and uses[m.name]), key=lambda m: -uses[m.name])
    chosen = [m for m in methods if m.name == "__init__"] + used[:max_methods]
    return "\n".join(d.text for d in [head, *sorted(chosen, key=lambda m: m.line)])


def _contexts_job(job: tuple[list[SourceFile], int]) -> list[str]:
    files, max_chars = job
    index = ContextIndex(files)
    return [index.context_for(f, max_chars) for f in files]


def corpus_contexts(files: Sequence[SourceFile], max_chars: int, workers: int | None = None) -> list[str]:
    """The cross-file context of every file, computed per distribution in parallel (context never crosses
    distributions: a workspace is one project)."""
    by_dist: dict[str, list[int]] = {}
    for i, f in enumerate(files):
        by_dist.setdefault(f.distribution, []).append(i)
    groups = sorted(by_dist.values(), key=len, reverse=True)
    jobs = [([files[i] for i in group], max_chars) for group in groups]
    workers = workers or max(1, min(len(jobs), os.cpu_count() or 1))
    if workers == 1:
        results = [_contexts_job(job) for job in jobs]
    else:
        with get_context("spawn").Pool(workers) as pool:
            results = pool.map(_contexts_job, jobs, chunksize=1)
    contexts = [""] * len(files)
    for group, texts in zip(groups, results, strict=True):
        for i, text in zip(group, texts, strict=True):
            contexts[i] = text
    return contexts


def _relative(path: str, current_path: str) -> str:
    base = str(PurePosixPath(current_path).parent)
    if base not in ("", ".") and path.startswith(base + "/"):
        return path[len(base) + 1 :]
    return path
