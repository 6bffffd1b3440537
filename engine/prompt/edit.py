"""The edit job's prompt and seeded canvas: the canvas starts from the current text of an editable window (partly
renoised), the prompt carries the file around the window and the recent edits as a compact diff, and the model
rewrites the window. Pure: a tokenizer and plain data in, token ids out; nothing here runs the model.

Embedded model (layout.py): the window's prefix and suffix take the places of the cursor's, the recent edits go
in the context section, and the canvas reads healed characters, window, <eos>, <pad>s. It gets no instruction:
training renders its edit rows with these same functions (training/edit_rows.py).
Chat checkpoints (chat.py): an instruction names the window, which the file marks with EDIT_OPEN/EDIT_CLOSE; the
reply's code block is the canvas: window, closing fence, <eos>, <pad>s.
"""

from __future__ import annotations

import difflib
import random
from dataclasses import dataclass, replace
from typing import Any

from .budget import prompt_token_limit
from .chat import DEFAULT_LAYOUT, EMPTY_THOUGHT, FENCE, TURN_CLOSE, TURN_OPEN, layout_for
from .layout import BOS, PromptParts, encode_prompt

EDIT_OPEN, EDIT_CLOSE = "<EDIT_WINDOW>", "</EDIT_WINDOW>"
EDIT_CANVAS_TOKENS = 128  # the edit job's canvas: the window, its end and room for the rewrite to grow
WINDOW_SHARE = 0.6  # of the canvas the window's own tokens may fill
RENOISE = 0.25  # share of the window's tokens renoised before the first step
DEFAULT_CHARS_PER_TOKEN = 3.0


def window_chars(canvas_tokens: int, chars_per_token: float | None) -> int:
    """How many characters of window fit an edit canvas of `canvas_tokens`, by the model's characters per token."""
    return int(canvas_tokens * WINDOW_SHARE * (chars_per_token or DEFAULT_CHARS_PER_TOKEN))


@dataclass(frozen=True)
class Window:
    """The editable window: the document's characters [start, end), whole lines."""

    start: int
    end: int


def edit_window(text: str, cursor: int, max_chars: int) -> Window:
    """Whole lines around the cursor's line, taken one above and one below in turn, at most `max_chars` (the cursor's
    line always, cut to `max_chars` if it alone is longer)."""
    cursor = min(max(cursor, 0), len(text))
    start = text.rfind("\n", 0, cursor) + 1
    newline = text.find("\n", cursor)
    end = len(text) if newline < 0 else newline + 1
    if end - start > max_chars:
        return Window(start, min(start + max_chars, end))
    grew = True
    while grew:
        grew = False
        above = text.rfind("\n", 0, max(start - 1, 0)) + 1 if start > 0 else start
        if start > 0 and end - above <= max_chars:
            start, grew = above, True
        newline = text.find("\n", end)
        below = len(text) if newline < 0 else newline + 1
        if end < len(text) and below - start <= max_chars:
            end, grew = below, True
    return Window(start, end)


def compact_diff(before: str, after: str, context_lines: int = 1) -> str:
    """The change from `before` to `after` as unified-diff hunks without file headers ("" when equal)."""
    lines = difflib.unified_diff(
        before.splitlines(keepends=True), after.splitlines(keepends=True), n=context_lines, lineterm=""
    )
    body = [line if line.endswith("\n") else line + "\n" for line in lines][2:]  # drop the ---/+++ headers
    return "".join(body)


@dataclass(frozen=True)
class EditWindow:
    """The text an edit job may rewrite (the prompt's prefix and suffix are the text before and after it), the
    recent edits as a compact diff, and the share of the window's tokens renoised before the first step."""

    text: str
    recent_edits: str = ""
    renoise: float = 0.25


@dataclass(frozen=True)
class EncodedEdit:
    """Prompt ids, the starting canvas, its pins, and the prompt characters the canvas re-creates first."""

    ids: tuple[int, ...]
    seed_canvas: tuple[int, ...]
    pins: tuple[tuple[int, int], ...]
    healed: str


def edit_instruction(parts: PromptParts) -> str:
    """The chat layout's instruction: which text to rewrite, and that an unchanged window is a valid answer."""
    return (
        f"In the {parts.language} file `{parts.path}` below, the lines between {EDIT_OPEN} and {EDIT_CLOSE} are the "
        "editable window. Rewrite that window as the developer's recent edits call for (a rename, a new parameter, "
        "a change to one of several parallel lines). If nothing should change, repeat the window unchanged. Reply "
        "with only the window's new text, in one code block.\n\n"
    )


def recent_edits_block(diff: str) -> str:
    """The recent edits as the prompt shows them ("" without any)."""
    return f"Recent edits:\n{FENCE}diff\n{diff.rstrip()}\n{FENCE}\n\n" if diff.strip() else ""


def encode_edit(
    tokenizer: Any,
    parts: PromptParts,
    window: EditWindow,
    canvas_length: int,
    vocab_size: int,
    seed: int | None = None,
    max_tokens: int = 2048,
) -> EncodedEdit:
    """The edit job for `window` between `parts.prefix` and `parts.suffix`, in the layout that suits `tokenizer`;
    ValueError when the window does not fit the canvas."""
    if layout_for(tokenizer) is DEFAULT_LAYOUT:
        context = recent_edits_block(window.recent_edits) + parts.context
        encoded = encode_prompt(tokenizer, replace(parts, context=context), max_tokens)
        ids, healed, tail = encoded.ids, encoded.healed, ""
    else:
        closing = FENCE if window.text.endswith("\n") or not window.text else f"\n{FENCE}"
        ids, healed, tail = tuple(_chat_prompt(tokenizer, parts, window, max_tokens)), "", closing
    kept = _ids(tokenizer, healed)  # re-created first, held fixed
    body = _ids(tokenizer, window.text + tail)
    eos, pad = _special(tokenizer, "eos_token_id", 1), _special(tokenizer, "pad_token_id", 0)
    used = len(kept) + len(body) + 1
    if used > canvas_length:
        raise ValueError(f"the edit window is {used} tokens with its end; the canvas holds {canvas_length}")
    canvas = kept + renoised(body, window.renoise, vocab_size, seed) + [eos] + [pad] * (canvas_length - used)
    return EncodedEdit(ids=tuple(ids), seed_canvas=tuple(canvas), pins=tuple(enumerate(kept)), healed=healed)


def renoised(ids: list[int], share: float, vocab_size: int, seed: int | None) -> list[int]:
    """`ids` with `share` of its positions (rounded) replaced by uniform random tokens, as the sampler renoises."""
    rng = random.Random(seed)
    count = round(len(ids) * min(max(share, 0.0), 1.0))
    out = list(ids)
    for position in rng.sample(range(len(ids)), count):
        out[position] = rng.randrange(vocab_size)
    return out


def _chat_prompt(tokenizer: Any, parts: PromptParts, window: EditWindow, max_tokens: int) -> list[int]:
    """The chat layout's prompt ids: instruction, recent edits, the file with its window marked, the reply's opening
    fence; the file's prefix cut from the left and its suffix from the right to fit `max_tokens`."""
    max_tokens = prompt_token_limit(tokenizer, max_tokens)
    head = _ids(
        tokenizer,
        f"{BOS}{TURN_OPEN}user\n{edit_instruction(parts)}{recent_edits_block(window.recent_edits)}"
        f"{FENCE}{parts.language}\n",
    )
    marked = _ids(tokenizer, f"{EDIT_OPEN}\n{window.text}{EDIT_CLOSE}\n")
    tail = _ids(tokenizer, f"{FENCE}{TURN_CLOSE}\n{TURN_OPEN}model\n{EMPTY_THOUGHT}{FENCE}{parts.language}\n")
    prefix_ids, suffix_ids = _ids(tokenizer, parts.prefix), _ids(tokenizer, parts.suffix)
    budget = max(max_tokens - len(head) - len(marked) - len(tail), 0)
    suffix_ids = suffix_ids[: budget // 3]
    prefix_ids = prefix_ids[max(len(prefix_ids) - (budget - len(suffix_ids)), 0) :]
    return head + prefix_ids + marked + suffix_ids + tail


def _special(tokenizer: Any, name: str, default: int) -> int:
    value = getattr(tokenizer, name, None)
    return int(value) if isinstance(value, int) else default


def _ids(tokenizer: Any, text: str) -> list[int]:
    ids: list[int] = tokenizer(text, add_special_tokens=False)["input_ids"] if text else []
    return ids
