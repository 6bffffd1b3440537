"""Turning a raw canvas into the text an editor inserts: cut at special tokens and low-confidence tails, stop where
the syntactic block the completion started in ends (block_end.py), drop what repeats the suffix, balance the brackets
the completion opened, match the document's indentation (fit.py), and drop what is left too short. Pure: text in,
text out.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from diffusion_copilot.engine import strip_healed

from ..context.mode import CompletionMode
from .block_end import cut_at_block_end
from .fit import CLOSERS, OPENERS, balance_brackets, drop_suffix_repeats, infer_indent_unit, match_indentation

SPECIAL_TOKEN = re.compile(r"<(?:bos|eos|pad|unk|mask)>|<\|[a-z_]+\|?>|<[a-z_]+\|>")


@dataclass(frozen=True)
class PostprocessOptions:
    """Knobs of post-processing; `indent_unit` comes from the client's formattingOptions when it sends them."""

    min_chars: int = 1  # fewer non-blank characters than this and the completion is dropped
    min_confidence: float = 0.15  # tokens below this end the completion (at a line boundary in block modes)
    indent_unit: str | None = None  # "\t" or N spaces; None: inferred from the document
    stop_sequences: tuple[str, ...] = ()  # the prompt layout's own stops, e.g. a closing code fence


@dataclass(frozen=True)
class Processed:
    """The text to insert (None: show nothing) and the rules that changed it, in order."""

    text: str | None
    rules: tuple[str, ...] = ()


def postprocess(
    completion: str,
    prefix: str,
    suffix: str,
    language: str,
    mode: CompletionMode,
    confidence: Sequence[float] = (),
    token_texts: Sequence[str] | None = None,
    options: PostprocessOptions = PostprocessOptions(),
    healed: str = "",
) -> Processed:
    """Post-process one canvas. `token_texts` (the decoded text of each token, joined = the completion) lets
    `confidence` (one value per token) map onto characters; without it confidence is ignored. `healed` is the
    prompt's token-healing text: the canvas must re-create it (`strip_healed`), and it is removed."""
    rules: list[str] = []
    text = completion if token_texts is None else "".join(token_texts)
    if healed:
        rest = strip_healed(text, healed)
        if rest is None:
            return Processed(None, ("healing",))
        token_texts = _without_first_chars(token_texts, len(text) - len(rest)) if token_texts is not None else None
        text = rest

    def apply(rule: str, new: str) -> None:
        nonlocal text
        if new != text:
            rules.append(rule)
            text = new

    apply("special", cut_at_special(text, options.stop_sequences))
    if token_texts is not None and confidence:
        apply("confidence", cut_low_confidence(text, token_texts, confidence, options.min_confidence, mode))
    if mode is CompletionMode.REST_OF_LINE:
        apply("line", cut_at_line_end(text))
    else:
        cut = cut_at_block_end(text, prefix, suffix, language)
        apply(cut[1], cut[0])
    apply("suffix", drop_suffix_repeats(text, suffix))
    apply("brackets", balance_brackets(text, suffix))
    unit = options.indent_unit or infer_indent_unit(prefix[-1500:] + suffix[:400])
    apply("indent", match_indentation(text, unit))
    apply("trailing", text.rstrip() if "\n" in text or not text.strip() else text)
    if len("".join(text.split())) < options.min_chars:
        return Processed(None, (*rules, "too-short"))
    return Processed(text, tuple(rules))


def _without_first_chars(pieces: Sequence[str], count: int) -> list[str]:
    """Token texts less their first `count` characters, one entry per token still."""
    out = list(pieces)
    for i, piece in enumerate(out):
        if count <= 0:
            break
        out[i] = piece[count:]
        count -= len(piece)
    return out


def cut_at_special(text: str, stops: Sequence[str] = ()) -> str:
    """The text before the first special token (end of sequence, turn markers) or stop sequence."""
    match = SPECIAL_TOKEN.search(text)
    end = match.start() if match else len(text)
    for stop in stops:
        at = text.find(stop, 0, end)
        end = at if at >= 0 else end
    return text[:end]


def token_texts(decode: Callable[[list[int]], str], token_ids: Sequence[int]) -> list[str]:
    """The text each token adds, by decoding growing prefixes (byte-level tokens split characters)."""
    pieces: list[str] = []
    previous = ""
    for n in range(1, len(token_ids) + 1):
        current = decode(list(token_ids[:n]))
        if current.startswith(previous) and not current.endswith("\ufffd"):
            pieces.append(current[len(previous) :])
            previous = current
        else:
            pieces.append("")
    if pieces:
        pieces[-1] += decode(list(token_ids))[len(previous) :]
    return pieces


def cut_low_confidence(
    text: str, pieces: Sequence[str], confidence: Sequence[float], threshold: float, mode: CompletionMode
) -> str:
    """The text before the first token under `threshold`: the whole line it starts on goes in block modes."""
    offset = 0
    for piece, value in zip(pieces, confidence, strict=False):
        if value < threshold and piece.strip():
            if mode is CompletionMode.REST_OF_LINE:
                return text[:offset]
            line_start = text.rfind("\n", 0, offset)
            return text[:line_start] if line_start > 0 else text[:offset]
        offset += len(piece)
    return text


def cut_at_line_end(text: str) -> str:
    """The first line, or more while brackets the completion opened are still open."""
    depth = 0
    for i, ch in enumerate(text):
        if ch in OPENERS:
            depth += 1
        elif ch in CLOSERS:
            depth -= 1
        elif ch == "\n" and depth <= 0 and text[:i].strip():
            return text[:i]
    return text

