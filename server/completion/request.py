"""One completion, whatever the front end: a document and a cursor in, texts to insert at the cursor out.

The CLI builds its context and post-processes with the language server's own functions (`with_context`,
`postprocess`), so it gives the same completions as the editors and the HTTP API for the same document.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from diffusion_copilot.engine import JobResult, token_texts
from diffusion_copilot.engine.protocol import run_reply_of

from ..context.budget import ContextBudget
from .gate import Gate, acceptances
from .inline import CursorRequest, with_context
from .postprocess import PostprocessOptions, postprocess


@dataclass(frozen=True)
class CompletionRequest:
    """A cursor in a document, 0-based line and character (code points), and how much work to spend on it."""

    path: str
    language: str
    text: str
    line: int
    character: int
    alternatives: int = 1
    canvas_length: int = 32
    max_steps: int | None = 16
    time_budget_s: float | None = None
    seed: int | None = None


@dataclass(frozen=True)
class CompletionItem:
    """Text to insert at the cursor (it may span lines), with the mean confidence of its tokens and its predicted
    acceptance (None: the model has no gate)."""

    text: str
    line: int
    character: int
    confidence: float
    acceptance: float | None = None


def cursor_offset(text: str, line: int, character: int) -> int:
    """The string index of a (line, character) cursor; ValueError when it lies outside the text."""
    lines = text.split("\n")
    if not 0 <= line < len(lines):
        raise ValueError(f"line {line + 1} is out of range (the file has {len(lines)} lines)")
    if not 0 <= character <= len(lines[line]):
        raise ValueError(f"column {character + 1} is out of range (line {line + 1} has {len(lines[line])} characters)")
    return sum(len(previous) + 1 for previous in lines[:line]) + character


def cursor_request(request: CompletionRequest, budget: ContextBudget | None = None) -> CursorRequest:
    """The request with its tree-sitter context within `budget`, built by the same code as the language server's."""
    offset = cursor_offset(request.text, request.line, request.character)
    plain = CursorRequest(
        uri=request.path,
        path=request.path,
        language=request.language,
        prefix=request.text[:offset],
        suffix=request.text[offset:],
        cursor_offset=offset,
        invoked=request.alternatives > 1,
    )
    return with_context(plain, None, budget)


def completion_items(
    request: CompletionRequest,
    cursor: CursorRequest,
    result: JobResult,
    decode: Callable[[list[int]], str],
    options: PostprocessOptions | None = None,
    gate: Gate | None = None,
) -> tuple[CompletionItem, ...]:
    """Turn the engine's canvases into insertable items: healed characters stripped, post-processed with the
    cursor's context and each token's confidence (`decode`: the engine's), empty and duplicate texts dropped, each
    scored by `gate` where the model has one (never hidden: a command-line request is an explicit one)."""
    assert cursor.context is not None
    items: list[CompletionItem] = []
    seen: set[str] = set()
    wire = run_reply_of(result, 0.0, decode).canvases if gate is not None else ()
    for index, canvas in enumerate(result.canvases):
        pieces = token_texts(decode, canvas.token_ids, canvas.text)
        text = postprocess(
            canvas.text,
            cursor.prefix,
            cursor.suffix,
            cursor.language,
            cursor.context.mode,
            canvas.confidence,
            pieces or None,
            options or PostprocessOptions(),
            result.healed,
        ).text
        if text is None or not text.strip() or text in seen:
            continue
        seen.add(text)
        confidence = sum(canvas.confidence) / len(canvas.confidence) if canvas.confidence else 0.0
        acceptance = None if gate is None else acceptances(
            gate, [wire[index]], result.healed, [text], cursor.prefix, cursor.suffix, cursor.language,
            cursor.context.mode)[0]
        items.append(CompletionItem(text=text, line=request.line, character=request.character, confidence=confidence,
                                    acceptance=acceptance))
    return tuple(items)
