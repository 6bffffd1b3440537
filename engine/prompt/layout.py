"""The prompt layout of the embedded code model, defined once for training and for completion time, and the
token healing that makes a prompt end on a clean token boundary.

Layout (special tokens in angle brackets):
    <bos><|file|>{path}<|language|>{language}<|context|>{cross-file context}<|suffix|>{suffix}<|prefix|>{prefix}
The suffix comes before the prefix so that the prefix, the text nearest the cursor, ends the prompt and the
canvas continues it. The canvas holds the middle (the text that goes at the cursor), then <eos>, then <pad>s.

Token healing: the last prefix token is dropped from the prompt (the cursor may sit inside it: half an
identifier, part of the indentation) and returned as `healed`; the canvas re-creates it, and `strip_healed`
cuts it from the completion. The default model is trained on exactly this: its canvases start at a token
boundary of the whole file, one token before the cursor.

The suffix can be used two ways, and the default model is trained on both: in the prompt (above, cut to
`max_suffix_tokens`), or pinned into the canvas tail with `suffix_pins`: the canvas then reads middle, <eos>,
<pad>s, first suffix tokens, and the engine's cut at the first <eos> leaves the middle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .budget import prompt_token_limit

BOS, EOS, PAD = "<bos>", "<eos>", "<pad>"
FILE, LANGUAGE, CONTEXT, SUFFIX, PREFIX = "<|file|>", "<|language|>", "<|context|>", "<|suffix|>", "<|prefix|>"
MAX_SUFFIX_TOKENS = 96  # the default model saw 16..96 suffix tokens in its prompts
# Ids 0/1/2 are pad/eos/bos as in Gemma; the Gemma 4 turn and image tokens keep checkpoints loadable by the
# same code as the real model.
SPECIAL_TOKENS = (
    PAD,
    EOS,
    BOS,
    "<unk>",
    "<mask>",
    "<|turn>",
    "<turn|>",
    "<|image|>",
    "<|image>",
    "<image|>",
    FILE,
    LANGUAGE,
    CONTEXT,
    SUFFIX,
    PREFIX,
)


@dataclass(frozen=True)
class PromptParts:
    """What the model is told about the cursor."""

    path: str
    language: str
    prefix: str
    suffix: str = ""
    context: str = ""  # cross-file definitions, recent edits


@dataclass(frozen=True)
class EncodedPrompt:
    """Prompt token ids, and the characters cut from the end of the prefix that the completion must re-create."""

    ids: tuple[int, ...]
    healed: str


def head_text(parts: PromptParts) -> str:
    """Everything before the prefix, as text with special tokens."""
    return f"{BOS}{FILE}{parts.path}{LANGUAGE}{parts.language}{CONTEXT}{parts.context}{SUFFIX}{parts.suffix}{PREFIX}"


def encode_prompt(
    tokenizer: Any,
    parts: PromptParts,
    max_tokens: int = 2048,
    suffix_share: float = 0.25,
    max_suffix_tokens: int = MAX_SUFFIX_TOKENS,
) -> EncodedPrompt:
    """Token ids of the layout, cut to `max_tokens` (prefix from the left, suffix and context from the right;
    the suffix to at most `max_suffix_tokens` and `suffix_share` of the budget), ending on a clean token
    boundary: the last prefix token is dropped and returned as `healed`, because the cursor may sit inside it
    (half an identifier, part of the indentation). A tokenizer's `model_max_length` lowers `max_tokens`."""
    max_tokens = prompt_token_limit(tokenizer, max_tokens)
    prefix_ids = _ids(tokenizer, parts.prefix)
    healed = ""
    if prefix_ids:
        healed = tokenizer.decode(prefix_ids[-1:])
        prefix_ids = prefix_ids[:-1]
    suffix_ids = _ids(tokenizer, parts.suffix)
    context_ids = _ids(tokenizer, parts.context)
    fixed = _ids(tokenizer, head_text(PromptParts(parts.path, parts.language, "", "", "")))
    budget = max(max_tokens - len(fixed), 0)
    suffix_ids = suffix_ids[: min(int(budget * suffix_share), max_suffix_tokens)]
    context_ids = context_ids[: max(budget - len(suffix_ids) - len(prefix_ids), budget // 4)]
    prefix_ids = prefix_ids[max(len(prefix_ids) - (budget - len(suffix_ids) - len(context_ids)), 0) :]
    head = _ids(tokenizer, f"{BOS}{FILE}{parts.path}{LANGUAGE}{parts.language}{CONTEXT}")
    ids = head + context_ids + _ids(tokenizer, SUFFIX) + suffix_ids + _ids(tokenizer, PREFIX) + prefix_ids
    return EncodedPrompt(ids=tuple(ids), healed=healed)


def strip_healed(text: str, healed: str) -> str | None:
    """The completion without the re-created characters, or None when it does not re-create them. Healed newlines
    alone (a cursor at column 0) are re-created by any run of newlines: a model may spell the line break with fewer
    (leaving out a blank line the prompt lost with the cut token, "\n\n" re-created as "\n") or merge one into
    the next line's indentation ("\n   "); what follows the run starts at the cursor's column 0."""
    if text.startswith(healed):
        return text[len(healed) :]
    newlines = len(text) - len(text.lstrip("\n"))
    if newlines and not healed.strip("\n"):
        return text[newlines:]
    return None


def suffix_pins(tokenizer: Any, suffix: str, canvas_length: int, count: int = 8) -> tuple[tuple[int, int], ...]:
    """(canvas position, token id) pins that hold the first `count` suffix tokens in the canvas tail, leaving
    the positions before them for the middle, its <eos> and padding; () when there is no suffix."""
    if canvas_length < 2:
        return ()
    head = _ids(tokenizer, suffix)[: min(count, canvas_length - 2)]
    start = canvas_length - len(head)
    return tuple((start + i, token) for i, token in enumerate(head))


def healed_pins(tokenizer: Any, healed: str, canvas_length: int) -> tuple[tuple[int, int], ...]:
    """Pins that make every canvas start by re-creating `healed` (at most `canvas_length - 1` tokens of it)."""
    return tuple(enumerate(_ids(tokenizer, healed)[: max(canvas_length - 1, 0)]))


def indentation_pins(tokenizer: Any, healed: str) -> tuple[tuple[int, int], ...]:
    """Pins that keep the cursor's indentation when healing cut it: a healed text of a newline and spaces is
    re-created as the file's tokens would spell it before code (all but the last space; that space opens the
    first code token), held at the canvas start. () for any other healed text."""
    if not healed.endswith(" ") or healed.strip(" \t\n") or "\n" not in healed:
        return ()
    return tuple(enumerate(_ids(tokenizer, healed[:-1])))


def _ids(tokenizer: Any, text: str) -> list[int]:
    ids: list[int] = tokenizer(text, add_special_tokens=False)["input_ids"]
    return ids
