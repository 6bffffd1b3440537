"""The inline-completion flow of the language server: a cursor in a document in, texts to insert out.

Answers from the typing-through cache or the LRU when it can, otherwise asks the engine; never answers for a
document version that went stale meanwhile. No LSP types here (lsp/convert.py converts), no blocking calls.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from enum import StrEnum

from diffusion_copilot.engine import PromptParts
from diffusion_copilot.engine.protocol import EngineError, EngineState, EngineStatus, RunCanvas, RunReply, RunRequest

from ..context.budget import ContextBudget
from ..context.build import CompletionContext
from ..context.documents import DocumentStore
from ..context.paths import shown_path
from ..engine_client import EngineClient
from ..settings import Settings
from .cache import CompletionCache, context_key
from .gate import Gate, GateError, acceptances, gate_of, threshold_of
from .postprocess import PostprocessOptions, postprocess

PREFIX_CHARS = 16_000  # the engine keeps at most ~2k prompt tokens; more text is only cost
SUFFIX_CHARS = 4_000
DOCUMENTS_WAIT_S = 1.0  # the longest a completion waits for the document worker before building its context

log = logging.getLogger(__name__)


class Source(StrEnum):
    ENGINE = "engine"
    CACHE = "cache"
    TYPING = "typing"


@dataclass(frozen=True)
class CursorRequest:
    """A completion request in plain data: the text around the cursor, in code points."""

    uri: str
    path: str
    language: str
    prefix: str  # the document text before the cursor (with a selected completion's text applied)
    suffix: str  # the document text after it
    cursor_offset: int  # where the cursor is in the document, as a string index
    invoked: bool  # explicitly asked for (alternatives) rather than automatic
    context: CompletionContext | None = None  # the tree-sitter context (with_context); None: plain windows
    shown_path: str = ""  # the file's path as the prompt shows it (workspace-relative); "": context.paths' rule


@dataclass(frozen=True)
class InlineAnswer:
    """Texts to insert at the cursor, where they came from, and the engine's share of the time."""

    texts: tuple[str, ...]
    source: Source
    engine_sent_s: float | None = None  # perf_counter when the engine request was sent
    engine_done_s: float | None = None  # perf_counter when its reply arrived
    reply: RunReply | None = None


def context_budget(max_prompt_tokens: int | None, chars_per_token: float | None) -> ContextBudget:
    """How much text of each kind fits the prompt of the engine's model (as its status gives them); the defaults
    (a 2,048-token prompt) until the engine has said."""
    if max_prompt_tokens is None or chars_per_token is None:
        return ContextBudget()
    return ContextBudget.for_prompt(max_prompt_tokens, chars_per_token)


def postprocess_options(has_random_weights: bool | None, min_confidence: float = 0.15) -> PostprocessOptions:
    """Post-processing for the engine's model: random weights are unsure of every token, so confidence cuts
    nothing there (it would cut every completion)."""
    return PostprocessOptions(min_confidence=0.0 if has_random_weights else min_confidence)


def with_context(request: CursorRequest, documents: DocumentStore | None = None,
                 budget: ContextBudget | None = None) -> CursorRequest:
    """The request with its completion context: mode, syntactic prefix and suffix windows, cross-file
    definitions and recent edits (from `documents`, where the caller keeps one), within `budget`."""
    store = documents or DocumentStore()
    context = store.context(request.uri, request.path, request.language, request.prefix, request.suffix, budget)
    return replace(request, context=context)


def prompt_spec(request: CursorRequest) -> PromptParts:
    """What the model is told about the cursor."""
    path = request.shown_path or shown_path(request.path)
    if request.context is not None:
        return replace(request.context.prompt, path=path)
    return PromptParts(path=path, language=request.language, prefix=request.prefix[-PREFIX_CHARS:],
                       suffix=request.suffix[:SUFFIX_CHARS])


def finished_texts(request: CursorRequest, reply: RunReply,
                   options: PostprocessOptions | None = None) -> tuple[str, ...]:
    """The insertable texts of a reply: the healed characters stripped, post-processed with the request's context
    (low-confidence tail, block end, suffix repeats, brackets, indentation), empty and repeated texts dropped."""
    texts: list[str] = []
    options = options or PostprocessOptions()
    for canvas in reply.canvases:
        text = canvas.completion
        if text is not None and request.context is not None:
            text = postprocess(canvas.text, request.prefix, request.suffix, request.language, request.context.mode,
                               canvas.confidence, canvas.token_texts, options, reply.healed).text
        text = (text or "").rstrip()
        if text.strip() and text not in texts:
            texts.append(text)
    return tuple(texts)


def source_canvas(text: str, index: int, reply: RunReply) -> RunCanvas | None:
    """The canvas a finished text came from: the one it equals, else the first it starts (post-processing cuts),
    else the one at the same index."""
    completions = [(c.completion or "", c) for c in reply.canvases]
    found = next((c for completion, c in completions if completion.rstrip() == text), None) or \
        next((c for completion, c in completions if completion.startswith(text)), None)
    if found is None and index < len(reply.canvases):
        return reply.canvases[index]
    return found


def text_acceptances(request: CursorRequest, reply: RunReply, texts: tuple[str, ...],
                     gate: Gate | None) -> tuple[float | None, ...]:
    """The gate's predicted acceptance of each finished text of `reply` (None without a gate or a context)."""
    if gate is None or request.context is None:
        return tuple(None for _ in texts)
    canvases = [source_canvas(text, index, reply) for index, text in enumerate(texts)]
    return acceptances(gate, canvases, reply.healed, texts, request.prefix, request.suffix, request.language,
                       request.context.mode)


def gated_texts(request: CursorRequest, reply: RunReply, texts: tuple[str, ...], gate: Gate | None,
                min_acceptance: float | None) -> tuple[str, ...]:
    """The texts of an automatic request that the acceptance gate lets through (all of an invoked one's)."""
    threshold = threshold_of(gate, min_acceptance)
    if request.invoked or threshold <= 0:
        return texts
    scores = text_acceptances(request, reply, texts, gate)
    return tuple(text for text, p in zip(texts, scores, strict=True) if p is None or p >= threshold)


def run_request(request: CursorRequest, settings: Settings, pin_healed: bool) -> RunRequest:
    """The engine job for a request under `settings`."""
    canvas_length, max_steps = settings.canvas_length, settings.max_steps
    if request.context is not None:  # the mode's plan, within the user's limits
        canvas_length = min(canvas_length, request.context.canvas_length)
        max_steps = min(max_steps, request.context.max_steps)
    return RunRequest(
        prompt=prompt_spec(request),
        canvas_length=canvas_length,
        max_steps=max_steps,
        alternatives=settings.alternatives if request.invoked else 1,
        time_budget_s=None if request.invoked else settings.latency_budget_ms / 1000,
        seed=settings.seed,
        pin_healed=pin_healed,
    )


class InlineCompleter:
    """Turns cursor requests into answers, with the cache in front of the engine."""

    def __init__(self, cache: CompletionCache, on_engine_error: Callable[[EngineError], None],
                 documents: DocumentStore | None = None, documents_ready: Callable[[float], bool] | None = None
                 ) -> None:
        self.cache = cache
        self.on_engine_error = on_engine_error
        self.documents = documents
        self.documents_ready = documents_ready  # waits (up to its argument, seconds) for queued edits to apply
        self._gate: tuple[str | None, Gate | None] = (None, None)  # the status's gate text and its parsed gate

    def gate(self, status: EngineStatus) -> Gate | None:
        """The acceptance gate of the engine's model (parsed once per gate text); None when it has none or its
        gate file is unusable (logged)."""
        if status.gate != self._gate[0]:
            parsed = None
            if status.gate is not None:
                try:
                    parsed = gate_of(status.gate)
                except GateError as err:
                    log.warning("%s: automatic completions are not gated", err)
            self._gate = (status.gate, parsed)
        return self._gate[1]

    def context_of(self, request: CursorRequest, budget: ContextBudget) -> CursorRequest:
        """`request` with its context, once the edits queued before it are in the store (or DOCUMENTS_WAIT_S
        passed: then the context uses what is there)."""
        if self.documents_ready is not None:
            self.documents_ready(DOCUMENTS_WAIT_S)
        return with_context(request, self.documents, budget)

    def key(self, request: CursorRequest, settings: Settings) -> str:
        return context_key(request.path, request.language, request.prefix[-PREFIX_CHARS:],
                           request.suffix[:SUFFIX_CHARS], request.invoked, settings.alternatives,
                           settings.model, settings.max_steps, settings.canvas_length, settings.seed,
                           settings.min_acceptance)

    def from_cache(self, request: CursorRequest, settings: Settings) -> InlineAnswer | None:
        """An answer without the engine, or None."""
        rest = self.cache.typed_through(request.uri, request.cursor_offset, request.prefix, request.suffix)
        if rest is not None:
            return InlineAnswer(rest if request.invoked else rest[:1], Source.TYPING)
        texts = self.cache.get(self.key(request, settings))
        if texts is not None:
            self.cache.remember_shown(request.uri, request.cursor_offset, request.prefix, request.suffix, texts)
            return InlineAnswer(texts, Source.CACHE)
        return None

    async def complete(self, request: CursorRequest, settings: Settings, client: EngineClient,
                       is_current: Callable[[], bool],
                       settle: Callable[[CursorRequest, Settings], Awaitable[None]] | None = None
                       ) -> InlineAnswer | None:
        """The answer for `request`, or None (engine not ready, failed, or the document went stale). `settle` waits
        before the engine is asked (the language server's debounce). Cancelling the awaiting task cancels the engine
        job."""
        cached = self.from_cache(request, settings)
        if cached is not None:
            return cached
        if not client.is_connected:
            client.ensure_connecting()
            return None
        if client.status.state in (EngineState.LOADING, EngineState.ERROR):
            return None
        if settle is not None:
            await settle(request, settings)
        if not is_current():
            return None
        budget = context_budget(client.status.max_prompt_tokens, client.status.chars_per_token)
        request = await asyncio.to_thread(self.context_of, request, budget)
        if not is_current():
            return None
        sent = time.perf_counter()
        reply = await client.run(run_request(request, settings, client.status.has_random_weights is True))
        done = time.perf_counter()
        if isinstance(reply, EngineError):
            self.on_engine_error(reply)
            return None
        if not is_current():
            return None
        options = postprocess_options(client.status.has_random_weights, settings.min_confidence)
        texts = finished_texts(request, reply, options)
        if request.invoked and not texts and options.min_confidence > 0:
            # Asked for explicitly: the best candidates the confidence cut left nothing of still show (the cut is
            # for what pops up unasked); the rest of post-processing applies as always.
            texts = finished_texts(request, reply, replace(options, min_confidence=0.0))
        texts = texts if request.invoked else gated_texts(request, reply, texts[:1], self.gate(client.status),
                                                           settings.min_acceptance)
        self.cache.put(self.key(request, settings), texts)
        if texts:
            self.cache.remember_shown(request.uri, request.cursor_offset, request.prefix, request.suffix, texts)
        return InlineAnswer(texts, Source.ENGINE, sent, done, reply)
