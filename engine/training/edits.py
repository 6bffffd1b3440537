"""Synthetic next-edit tasks cut from a Python file, shared by the edit evaluation and (later) edit training: a
recent edit (rename one site, add a parameter to a def, change one of several parallel calls, or an edit that needs
nothing more) and the window that should follow it. Pure text functions over one file; nothing here runs a model.
"""

from __future__ import annotations

import ast
import io
import random
import tokenize
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from .edit_sites import (
    LineOffsets,
    Replacement,
    bodies,
    call_insertion,
    called_name,
    def_insertion,
    fresh,
    identifiers,
    line_call,
    name_tokens,
    renamable,
    with_text,
)

NEW_PARAMETERS = ("timeout", "verbose", "context", "options", "retries", "logger", "config", "strict")
NEW_KEYWORDS = ("strict", "required", "default", "timeout", "verbose", "check")
RENAME_SUFFIXES = ("new", "value", "item", "total", "list", "ref")


class EditKind(StrEnum):
    """What the recent edit was, and so what should follow it."""

    RENAME = "rename"  # one site of a local name renamed; the other sites should follow
    PARAMETER = "parameter"  # a parameter added to a def; its calls should pass it
    PARALLEL = "parallel"  # a keyword added to one of several parallel calls; the others should get it too
    NO_CHANGE = "no_change"  # the recent edit is complete: the window should stay as it is


@dataclass(frozen=True)
class EditTask:
    """`before` is the file before the recent edit, `recent` that edit (offsets in `before`), `cursor` where it left
    the cursor (an offset in `document`), and `expected` how the window [window_start, window_end) of `document`
    (whole lines holding the cursor and every site that should change) should read once the edit is followed."""

    kind: EditKind
    before: str
    recent: Replacement
    cursor: int
    window_start: int
    window_end: int
    expected: str
    detail: str = ""  # the name, parameter or keyword involved; for no-change tasks, which sort

    @property
    def document(self) -> str:
        """The file after the recent edit: what the editor holds when the next edit is asked for."""
        return applied(self.before, [self.recent])

    @property
    def expected_document(self) -> str:
        """The whole file as it should read once the edit is followed."""
        text = self.document
        return text[: self.window_start] + self.expected + text[self.window_end :]


def applied(text: str, replacements: Iterable[Replacement]) -> str:
    """`text` with non-overlapping `replacements` (offsets in `text`) applied."""
    for r in sorted(replacements, key=lambda r: r.start, reverse=True):
        text = text[: r.start] + r.text + text[r.end :]
    return text


def edit_tasks(text: str, rng: random.Random, max_window_chars: int) -> list[EditTask]:
    """Every kind of task `text` offers (at most one rename, parameter and parallel task per candidate, and a
    no-change task beside each rename), windows at most `max_window_chars`; [] when `text` does not parse."""
    try:
        tree = ast.parse(text)
        names = name_tokens(text)
    except (SyntaxError, ValueError, tokenize.TokenError, IndentationError):
        return []
    lines = LineOffsets(text)
    tasks = _renames(text, tree, names, rng, max_window_chars)
    tasks += _parameters(text, tree, lines, rng, max_window_chars)
    tasks += _parallels(text, tree, lines, rng, max_window_chars)
    tasks += _literal_changes(text, rng, max_window_chars)
    return tasks


def sample_edit_tasks(
    texts: Sequence[str], per_kind: int, seed: int, max_window_chars: int
) -> list[tuple[int, EditTask]]:
    """(index of the file in `texts`, task): up to `per_kind` tasks of each kind, drawn with `seed`, files in a
    seeded order and each file's tasks cut with its own seeded generator (the same seed gives the same tasks)."""
    pools: dict[EditKind, list[tuple[int, EditTask]]] = {kind: [] for kind in EditKind}
    for index, text in enumerate(texts):
        for task in edit_tasks(text, random.Random(f"{seed}/{index}"), max_window_chars):
            pools[task.kind].append((index, task))
    rng = random.Random(seed)
    out: list[tuple[int, EditTask]] = []
    for kind in EditKind:
        rng.shuffle(pools[kind])
        out += pools[kind][:per_kind]
    return out


# --- the kinds


def _renames(
    text: str, tree: ast.AST, names: dict[str, list[int]], rng: random.Random, max_window_chars: int
) -> list[EditTask]:
    """Local names (every site within one window): one site renamed, the rest to follow; and the same rename
    finished (the last site was the recent edit) as a no-change task."""
    tasks = []
    for name in sorted(renamable(tree) & names.keys()):
        sites = names[name]
        if len(sites) < 2:
            continue
        window = _window(text, [sites[0], sites[-1] + len(name)], max_window_chars)
        if window is None:
            continue
        new = fresh(f"{name}_{rng.choice(RENAME_SUFFIXES)}", names)
        first = sites[0] if rng.random() < 0.7 else rng.choice(sites)
        rest = [s for s in sites if s != first]
        tasks.append(
            _task(
                EditKind.RENAME,
                text,
                Replacement(first, first + len(name), new),
                [Replacement(s, s + len(name), new) for s in rest],
                window,
                name,
            )
        )
        # finished: every site but the last renamed beforehand, the last one is the recent edit
        last = sites[-1]
        before = applied(text, [Replacement(s, s + len(name), new) for s in sites[:-1]])
        shift = (len(new) - len(name)) * (len(sites) - 1)
        start, end = window
        tasks.append(
            _task(
                EditKind.NO_CHANGE,
                before,
                Replacement(last + shift, last + shift + len(name), new),
                [],
                (start, end + shift),
                "finished rename",
            )
        )  # the window in `before`
    return tasks


def _parameters(
    text: str, tree: ast.AST, lines: LineOffsets, rng: random.Random, max_window_chars: int
) -> list[EditTask]:
    """Functions with only plain positional parameters whose every call (plain positional arguments) sits in one
    window with the def: a parameter appended to the def, the same name passed at each call."""
    defs: dict[str, list[ast.FunctionDef]] = {}
    calls: dict[str, list[ast.Call]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef):
            defs.setdefault(node.name, []).append(node)
        elif isinstance(node, ast.Call):
            called = called_name(node.func)
            if called is not None:
                calls.setdefault(called, []).append(node)
    taken = set(identifiers(text))
    tasks = []
    for name, found in sorted(defs.items()):
        if len(found) != 1 or name not in calls:
            continue
        node = found[0]
        args = node.args
        if args.vararg or args.kwarg or args.kwonlyargs or args.defaults or args.posonlyargs:
            continue
        if any(c.keywords or any(isinstance(a, ast.Starred) for a in c.args) for c in calls[name]):
            continue
        parameter = rng.choice([p for p in NEW_PARAMETERS if p not in taken] or ["extra_option"])
        header = def_insertion(text, lines, node)
        sites = [call_insertion(text, lines, c, parameter) for c in calls[name]]
        if header is None or any(s is None for s in sites):
            continue
        follow = [s for s in sites if s is not None]
        window = _window(text, [header.start] + [s.start for s in follow], max_window_chars)
        if window is None:
            continue
        tasks.append(
            _task(
                EditKind.PARAMETER,
                text,
                with_text(header, parameter, bool(args.args)),
                follow,
                window,
                f"{name}({parameter})",
            )
        )
    return tasks


def _parallels(
    text: str, tree: ast.AST, lines: LineOffsets, rng: random.Random, max_window_chars: int
) -> list[EditTask]:
    """Runs of three or more adjacent one-line statements calling the same function: a keyword argument added to
    one call, the same keyword expected in the others."""
    tasks = []
    for body in bodies(tree):
        run: list[ast.Call] = []
        for statement in [*body, None]:
            call = line_call(text, lines, statement)
            if (
                call is not None
                and run
                and (call.lineno != run[-1].lineno + 1 or ast.unparse(call.func) != ast.unparse(run[-1].func))
            ):
                tasks += _parallel_task(text, lines, run, rng, max_window_chars)
                run = []
            if call is None:
                tasks += _parallel_task(text, lines, run, rng, max_window_chars)
                run = []
            else:
                run.append(call)
    return tasks


def _parallel_task(
    text: str, lines: LineOffsets, run: list[ast.Call], rng: random.Random, max_window_chars: int
) -> list[EditTask]:
    if len(run) < 3:
        return []
    used = {k.arg for c in run for k in c.keywords}
    name = rng.choice([k for k in NEW_KEYWORDS if k not in used] or ["flag"])
    value = rng.choice(("True", "False", "None"))
    sites = []
    window = None
    for call in run:
        close = lines.offset(text, call.end_lineno or call.lineno, call.end_col_offset or 0) - 1
        inside = text[:close].rstrip()
        if text[close] != ")" or inside.endswith(","):
            return []
        separator = "" if inside.endswith("(") else ", "
        sites.append(Replacement(close, close, f"{separator}{name}={value}"))
    while sites:
        window = _window(text, [s.start for s in sites], max_window_chars)
        if window is not None:
            break
        sites.pop()
    if len(sites) < 3 or window is None:
        return []
    first = rng.randrange(len(sites)) if rng.random() < 0.3 else 0
    return [
        _task(
            EditKind.PARALLEL,
            text,
            sites[first],
            sites[:first] + sites[first + 1 :],
            window,
            f"{ast.unparse(run[0].func)}({name}={value})",
        )
    ]


def _literal_changes(text: str, rng: random.Random, max_window_chars: int) -> list[EditTask]:
    """One integer literal changed: an edit complete in itself (a no-change task); one per file at most."""
    numbers = []
    with io.StringIO(text) as stream:
        for token in tokenize.generate_tokens(stream.readline):
            if token.type == tokenize.NUMBER and token.string.isdigit():
                numbers.append(token)
    if not numbers:
        return []
    lines = LineOffsets(text)
    token = rng.choice(numbers)
    start = lines.starts[token.start[0] - 1] + token.start[1]
    end = start + len(token.string)
    new = str(int(token.string) + rng.choice((1, 2, 10)))
    window = _window(text, [start], max_window_chars)
    if window is None:
        return []
    return [_task(EditKind.NO_CHANGE, text, Replacement(start, end, new), [], window, "changed number")]


# --- building one task


def _task(
    kind: EditKind, before: str, recent: Replacement, follow: list[Replacement], window: tuple[int, int], detail: str
) -> EditTask:
    """The task whose window is `window` (offsets in `before`, the recent edit inside it), with the follow-up
    `follow` (offsets in `before`) applied to its expected text."""
    document = applied(before, [recent])
    shift = len(recent.text) - (recent.end - recent.start)
    moved = [Replacement(r.start + shift, r.end + shift, r.text) if r.start >= recent.end else r for r in follow]
    cursor = recent.start + len(recent.text)
    start, end = window[0], window[1] + shift
    expected_document = applied(document, moved)
    grown = len(expected_document) - len(document)
    return EditTask(kind, before, recent, cursor, start, end, expected_document[start : end + grown], detail)


def _window(text: str, offsets: list[int], max_window_chars: int) -> tuple[int, int] | None:
    """The whole lines of `text` holding `offsets`, or None when they span more than `max_window_chars`."""
    start = text.rfind("\n", 0, min(offsets)) + 1
    newline = text.find("\n", max(offsets))
    end = len(text) if newline < 0 else newline + 1
    return (start, end) if end - start <= max_window_chars else None
