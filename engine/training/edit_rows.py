"""Edit rows: the default model trained to follow a recent edit (the next-edit job) with its own denoising objective
from a different corruption. Synthetic tasks are cut from the training files (training/edits.py: a rename, a new
parameter, one of several parallel calls changed, or an edit that needs nothing more) and rendered exactly as the
server's edit job renders them: the window around the cursor (`edit_window`), the recent edit as a compact diff,
the prompt and seeded canvas of `encode_edit`. The row's canvas starts from the window as it reads now and its
target is the window as it should read; batches.py renoises the start at a random level, as the sampler does.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..prompt.edit import EDIT_CANVAS_TOKENS, EditWindow, compact_diff, edit_window, encode_edit, window_chars
from ..prompt.layout import PromptParts
from .corpus import SourceFile
from .edits import EditKind, EditTask, edit_tasks

PREFIX_CHARS_PER_SLOT = 8  # prompt text kept around the window: more than the prompt slots can hold, then cut
NO_CHANGE_SHARE = 0.3  # at most this share of rows leave the window alone (the files offer more of them than this)


@dataclass(frozen=True)
class EditRows:
    """Edit rows as arrays: prompts right-aligned in their slots (<pad> before), canvases of `EDIT_CANVAS_TOKENS`."""

    prompts: np.ndarray  # int32 [rows, prompt_slots]
    prompt_len: np.ndarray  # int64 [rows]
    start: np.ndarray  # int32 [rows, canvas]: pinned healed characters, the window now, <eos>, <pad>s
    target: np.ndarray  # int32 [rows, canvas]: the same with the window as it should read
    pinned: np.ndarray  # int64 [rows]: the leading canvas slots held fixed (the healed characters)
    kinds: Counter[str]

    def __len__(self) -> int:
        return int(self.prompt_len.shape[0])


def edit_row(
    tokenizer: Any, path: str, task: EditTask, prompt_slots: int, chars_per_token: float
) -> tuple[list[int], list[int], list[int], int] | None:
    """(prompt ids, start canvas, target canvas, pinned slots) of `task` as the server would ask for it, or None when
    the server's window would not hold every change the task expects, or the window does not fit the canvas."""
    document = task.document
    window = edit_window(document, task.cursor, window_chars(EDIT_CANVAS_TOKENS, chars_per_token))
    if not window.start <= task.window_start <= task.window_end <= window.end:
        return None
    grown = len(task.expected_document) - len(document)
    expected = task.expected_document[window.start : window.end + grown]
    keep = prompt_slots * PREFIX_CHARS_PER_SLOT
    parts = PromptParts(
        path=path, language="python", prefix=document[: window.start][-keep:], suffix=document[window.end :][:keep]
    )
    diff = compact_diff(task.before, document)

    def encoded(text: str) -> Any:  # unrenoised: batches.py renoises at a level drawn per row
        window_text = EditWindow(text, diff, renoise=0.0)
        return encode_edit(tokenizer, parts, window_text, EDIT_CANVAS_TOKENS, len(tokenizer), max_tokens=prompt_slots)

    try:
        now, then = encoded(document[window.start : window.end]), encoded(expected)
    except ValueError:  # a window, with its end, longer than the canvas
        return None
    if len(now.ids) > prompt_slots:
        return None
    return list(now.ids), list(now.seed_canvas), list(then.seed_canvas), len(now.pins)


def build_edit_rows(
    tokenizer: Any, files: Sequence[SourceFile], max_rows: int, prompt_slots: int, chars_per_token: float, seed: int
) -> EditRows:
    """Up to `max_rows` edit rows from the Python files of `files`, each file's tasks cut with its own seeded
    generator, files in a seeded order; no-change rows at most `NO_CHANGE_SHARE` of them."""
    order = [f for f in files if f.language == "python"]
    random.Random(seed).shuffle(order)
    rows: list[tuple[list[int], list[int], list[int], int]] = []
    kinds: Counter[str] = Counter()
    max_window = window_chars(EDIT_CANVAS_TOKENS, chars_per_token)
    for index, source in enumerate(order):
        if len(rows) >= max_rows:
            break
        for task in edit_tasks(source.text, random.Random(f"{seed}/{index}"), max_window):
            if task.kind == EditKind.NO_CHANGE and kinds[str(task.kind)] + 1 > NO_CHANGE_SHARE * (len(rows) + 1):
                continue
            row = edit_row(tokenizer, source.path, task, prompt_slots, chars_per_token)
            if row is not None and len(rows) < max_rows:
                rows.append(row)
                kinds[str(task.kind)] += 1
    prompts = np.zeros((len(rows), prompt_slots), dtype=np.int32)
    start = np.zeros((len(rows), EDIT_CANVAS_TOKENS), dtype=np.int32)
    target = np.zeros_like(start)
    for i, (ids, now, then, _) in enumerate(rows):
        prompts[i, prompt_slots - len(ids) :] = ids
        start[i], target[i] = now, then
    prompt_len = np.array([len(r[0]) for r in rows], dtype=np.int64)
    pinned = np.array([r[3] for r in rows], dtype=np.int64)
    return EditRows(prompts, prompt_len, start, target, pinned, kinds)
