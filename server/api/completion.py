"""The HTTP API's completion flow: a request body becomes the language server's own `CursorRequest` and engine
job (completion/inline.py), runs on the machine's engine process under a queue limit and a time budget, and comes
back as response bodies. One path with the editors: the prompt and the post-processing are completion/inline.py's.

No HTTP framework here: failures are `ApiError` values that app.py turns into responses.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace

from diffusion_copilot.engine.protocol import EngineError, EngineState, ErrorCode, RunCanvas, RunReply, RunRequest

from ..completion.inline import CursorRequest, finished_texts, postprocess_options, run_request, with_context
from ..context.budget import ContextBudget
from ..context.cross_file import RecentEdit
from ..context.documents import DocumentStore
from ..context.languages import language_for_path
from ..context.positions import line_starts, offset_at, units_between
from ..engine_client import EngineClient
from ..settings import Settings
from .metrics import ApiMetrics
from .models import (
    CodeCompletionItem,
    CodeCompletionRequest,
    CodeCompletionResponse,
    Position,
    Range,
    Timings,
)

DraftHandler = Callable[[int, tuple[str, ...]], None]
UNAVAILABLE = (ErrorCode.LOAD_FAILED, ErrorCode.START_FAILED, ErrorCode.ENGINE_LOST)


class ApiError(Exception):
    """A request the API answers with an error status; `kind` is the OpenAI error type."""

    def __init__(self, status: int, kind: str, message: str, code: str | None = None, param: str | None = None,
                 retry_after_s: int | None = None) -> None:
        super().__init__(message)
        self.status, self.kind, self.message, self.code = status, kind, message, code
        self.param, self.retry_after_s = param, retry_after_s


@dataclass(frozen=True)
class ApiLimits:
    """What one server accepts."""

    max_queue: int = 8  # completion requests admitted at once; more get 429
    time_budget_ms: int = 10_000  # default and cap of a request's wall-clock budget
    max_body_bytes: int = 4 * 1024 * 1024


@dataclass(frozen=True)
class Planned:
    """A request resolved against the document: the language server's request and job, and where the cursor is."""

    cursor: CursorRequest
    run: RunRequest
    position: Position  # the cursor, clamped to its line, in the request's position encoding
    mode: str
    budget_s: float
    min_confidence: float  # the settings' minConfidence


def bad_request(message: str, param: str | None = None) -> ApiError:
    return ApiError(400, "invalid_request_error", message, "bad_request", param)


def plan_code(body: CodeCompletionRequest, settings: Settings, limits: ApiLimits, pin_healed: bool,
              budget: ContextBudget | None = None) -> Planned:
    """The job for a /v1/code/completions body, built by the language server's own functions (`budget`: the
    model's prompt length in text, `inline.context_budget`)."""
    text, encoding = body.text, body.position_encoding
    offset = offset_at(text, body.position.line, body.position.character, encoding)
    if offset is None:
        lines = len(line_starts(text))
        raise bad_request(f"position.line {body.position.line} is outside the text (it has {lines} lines, "
                          "0-based)", "position")
    start = line_starts(text)[body.position.line]
    position = Position(line=body.position.line, character=units_between(text, start, offset, encoding))
    language = body.language or language_for_path(body.path)
    documents = DocumentStore()
    for other in body.other_files:
        documents.open(other.path, other.path, other.language or language_for_path(other.path), other.text)
    documents.recent.extend(RecentEdit(path=edit.path, text=edit.text) for edit in body.recent_edits)
    cursor = with_context(CursorRequest(uri=body.path, path=body.path, language=language, prefix=text[:offset],
                                        suffix=text[offset:], cursor_offset=offset, invoked=True), documents, budget)
    assert cursor.context is not None
    mode = cursor.context.mode.value
    wanted = replace(settings, alternatives=body.n, max_steps=body.max_steps or settings.max_steps,
                     canvas_length=body.canvas_length or settings.canvas_length,
                     seed=body.seed if body.seed is not None else settings.seed)
    budget_s = budget_seconds(body.time_budget_ms, limits)
    run = replace(run_request(cursor, wanted, pin_healed), time_budget_s=budget_s)
    if body.max_steps is not None:  # what the request asks for explicitly wins over the mode's plan
        run = replace(run, max_steps=body.max_steps)
    if body.canvas_length is not None:
        run = replace(run, canvas_length=body.canvas_length)
    return Planned(cursor, run, position, mode, budget_s, settings.min_confidence)


def plan_fill(prefix: str, suffix: str, path: str, language: str, settings: Settings, limits: ApiLimits,
              pin_healed: bool, budget: ContextBudget | None = None) -> Planned:
    """The job for a prefix and suffix without a document around them (the OpenAI dialect)."""
    cursor = with_context(CursorRequest(uri=path, path=path, language=language, prefix=prefix, suffix=suffix,
                                        cursor_offset=len(prefix), invoked=True), None, budget)
    assert cursor.context is not None
    budget_s = budget_seconds(None, limits)
    run = replace(run_request(cursor, settings, pin_healed), time_budget_s=budget_s)
    line = prefix.count("\n")
    column = len(prefix) - (prefix.rfind("\n") + 1)
    return Planned(cursor, run, Position(line=line, character=column), cursor.context.mode.value, budget_s,
                   settings.min_confidence)


def budget_seconds(requested_ms: int | None, limits: ApiLimits) -> float:
    return min(requested_ms or limits.time_budget_ms, limits.time_budget_ms) / 1000


def code_response(planned: Planned, reply: RunReply, status_model: str | None, random_weights: bool | None,
                  received: float) -> CodeCompletionResponse:
    """The response body: the language server's finished texts, each with the canvas it came from."""
    texts = finished_texts(planned.cursor, reply, postprocess_options(random_weights, planned.min_confidence))
    cursor = Range(start=planned.position, end=planned.position)
    items = []
    for index, text in enumerate(texts):
        canvas = source_canvas(text, index, reply)
        confidence = sum(canvas.confidence) / len(canvas.confidence) if canvas and canvas.confidence else 0.0
        items.append(CodeCompletionItem(text=text, range=cursor, confidence=round(confidence, 4),
                                        finish_reason=canvas.finish_reason if canvas else reply.finish_reason,
                                        steps=canvas.steps if canvas else reply.steps))
    return CodeCompletionResponse(
        id=f"code-{uuid.uuid4().hex[:16]}", model=status_model, model_has_random_weights=random_weights,
        mode=planned.mode,  # type: ignore[arg-type]
        items=items, finish_reason=reply.finish_reason, timings=timings(reply, received))


def source_canvas(text: str, index: int, reply: RunReply) -> RunCanvas | None:
    """The canvas a finished text came from: the one it equals, else the first it starts (post-processing cuts),
    else the one at the same index."""
    completions = [(c.completion or "", c) for c in reply.canvases]
    found = next((c for completion, c in completions if completion.rstrip() == text), None) or \
        next((c for completion, c in completions if completion.startswith(text)), None)
    if found is None and index < len(reply.canvases):
        return reply.canvases[index]
    return found


def timings(reply: RunReply, received: float) -> Timings:
    return Timings(queue_ms=round(reply.queue_ms, 2), encode_ms=round(reply.encode_ms, 2),
                   prefill_ms=round(reply.prefill_ms, 2), engine_ms=round(reply.total_ms, 2),
                   total_ms=round((time.perf_counter() - received) * 1000, 2), steps=reply.steps)


class EngineGate:
    """Admission, time budget and metrics around the shared engine client."""

    def __init__(self, client: EngineClient, limits: ApiLimits, metrics: ApiMetrics) -> None:
        self.client = client
        self.limits = limits
        self.metrics = metrics
        self.service_s = 0.5  # moving average of the engine's time per job, queueing excluded

    def expected_wait_s(self) -> float:
        """How long a request admitted now would wait for the jobs ahead of it (the engine runs one at a time)."""
        return self.service_s * self.metrics.in_flight

    def retry_after_s(self) -> int:
        """Seconds until a slot is likely free."""
        return max(1, min(60, math.ceil(self.expected_wait_s())))

    def check_ready(self) -> None:
        """503 while the engine loads or after it failed to start."""
        status = self.client.status
        if status.state is EngineState.LOADING:
            self.metrics.rejected("loading")
            raise ApiError(503, "engine_unavailable", f"the engine is loading: {status.message}", "loading",
                           retry_after_s=5)

    @contextlib.asynccontextmanager
    async def admitted(self, budget_s: float) -> AsyncIterator[None]:
        """A slot in the queue, or 429 when it is full or the jobs ahead would outlast the request's budget."""
        self.check_ready()
        if self.metrics.in_flight and self.expected_wait_s() > budget_s:
            self.metrics.rejected("busy")
            raise ApiError(429, "rate_limit_error", f"the {self.metrics.in_flight} completions ahead would take "
                           f"about {self.expected_wait_s():.1f} s, more than this request's budget of "
                           f"{budget_s:.1f} s; retry later", "busy", retry_after_s=self.retry_after_s())
        if self.metrics.in_flight >= self.limits.max_queue:
            self.metrics.rejected("queue_full")
            raise ApiError(429, "rate_limit_error", f"{self.metrics.in_flight} completions are queued (the limit "
                           f"is {self.limits.max_queue}); retry later", "queue_full",
                           retry_after_s=self.retry_after_s())
        self.metrics.in_flight += 1
        try:
            yield
        finally:
            self.metrics.in_flight -= 1

    async def run(self, planned: Planned, on_draft: DraftHandler | None = None) -> RunReply:
        """The engine's reply within the request's budget (plus the same again for queueing and prefill);
        cancelling the caller cancels the engine job."""
        sent = time.perf_counter()
        request = replace(planned.run, drafts=True) if on_draft is not None else planned.run
        task = asyncio.ensure_future(self.client.run(request, on_draft=on_draft))
        try:
            reply = await asyncio.wait_for(task, timeout=planned.budget_s * 2 + 1)
        except TimeoutError:
            self.metrics.cancelled("deadline")
            raise ApiError(429, "rate_limit_error", "the engine did not finish this request within its time "
                           "budget (it is busy); retry later", "deadline", retry_after_s=self.retry_after_s()) \
                from None
        except asyncio.CancelledError:
            self.metrics.cancelled("client_disconnected")
            raise
        engine_s = time.perf_counter() - sent
        if isinstance(reply, EngineError):
            raise engine_failure(reply, self.retry_after_s())
        self.service_s = 0.8 * self.service_s + 0.2 * (reply.encode_ms + reply.total_ms) / 1000
        self.metrics.engine_done(engine_s, reply.steps)
        return reply


def engine_failure(error: EngineError, retry_after_s: int) -> ApiError:
    """The HTTP answer to an engine error."""
    if error.code is ErrorCode.QUEUE_FULL:
        return ApiError(429, "rate_limit_error", "the engine's queue is full; retry later", "queue_full",
                        retry_after_s=retry_after_s)
    if error.code in UNAVAILABLE:
        return ApiError(503, "engine_unavailable", error.message, error.code.value, retry_after_s=5)
    if error.code is ErrorCode.BAD_REQUEST:
        return bad_request(f"the engine refused the job: {error.message}")
    return ApiError(502, "engine_error", error.message or error.code.value, error.code.value)
