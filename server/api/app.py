"""The headless HTTP completion API (docs/api.md): an ASGI app with OpenAI-compatible and code-aware completion
endpoints, health, models and Prometheus metrics, on the machine's shared engine process.

Routes only wire: the completion flow is completion.py, the refusals guard.py, the bodies models.py.
Every failure is an answer in the OpenAI error shape; a malformed body is a 4xx, never a 5xx.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from diffusion_copilot.engine.protocol import EngineState

from ..completion.inline import context_budget
from ..context.budget import ContextBudget
from ..engine_client import EngineClient, EngineSpec
from ..settings import Settings
from .completion import ApiError, ApiLimits, EngineGate, Planned, code_response, plan_code, plan_fill
from .edits import CodeEditRequest, CodeEditResponse, edit_response, plan_edit
from .events import Emit, EventSource, Slot, error_response, event_stream
from .guard import Guard
from .metrics import ApiMetrics
from .models import (
    CodeCompletionRequest,
    CodeCompletionResponse,
    ErrorResponse,
    Health,
    ModelCard,
    ModelList,
    OpenAICompletionRequest,
    OpenAICompletionResponse,
)
from .openai import openai_chunks, openai_response, split_prompt, stop_list
from .stream import LineTracker, draft_text, sse

VERSION = "0.1.0"
UNION_TAG = re.compile(r"^(str|int|float|bool|none|[a-z-]+\[.*\])$")
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": text}
    for status, text in ((400, "malformed or invalid body"), (401, "missing or wrong Bearer token"),
                         (403, "a non-loopback Host header without a token"), (413, "body too large"),
                         (415, "body is not JSON"),
                         (429, "queue full or budget spent waiting; see Retry-After"),
                         (502, "the engine failed on this job"), (503, "the engine is loading or unavailable"))
}


def event_schema(events: list[str], data: str) -> dict[str, Any]:
    """How a text/event-stream response is documented (OpenAPI 3.1: the schema of each event)."""
    return {"text/event-stream": {"schema": {
        "type": "object", "required": ["data"], "description": data,
        "properties": {"event": {"type": "string", "enum": events}, "data": {"type": "string"}}}}}


CODE_STREAM = event_schema(["draft", "line", "final", "error"], "draft: {step, texts}; line: {alternative, line, "
                           "text}; final: a CodeCompletionResponse; error: an ErrorResponse (docs/api.md)")
OPENAI_STREAM = event_schema(["message"], "a text_completion chunk, then the literal [DONE]")


@dataclass(frozen=True)
class ApiConfig:
    """One API server: which engine to use, what it accepts, and its token (None: loopback only)."""

    engine: EngineSpec = field(default_factory=EngineSpec)
    settings: Settings = field(default_factory=Settings)
    limits: ApiLimits = field(default_factory=ApiLimits)
    token: str | None = None


def create_app(config: ApiConfig, on_engine_client: Callable[[EngineClient], None] | None = None) -> Guard:
    """The ASGI app: the guard around the routes; the engine connection opens with the app's lifespan (and is
    handed to `on_engine_client`, so that whoever runs the server can stop it starting engines on the way out)."""
    metrics = ApiMetrics()
    return Guard(routes(config, metrics, on_engine_client), metrics, config.token, config.limits.max_body_bytes)


def openapi_schema() -> dict[str, Any]:
    """The OpenAPI schema the app serves at /openapi.json (docs/openapi.json is a copy)."""
    schema: dict[str, Any] = routes(ApiConfig(), ApiMetrics()).openapi()
    return schema


def routes(config: ApiConfig, metrics: ApiMetrics,
           on_engine_client: Callable[[EngineClient], None] | None = None) -> FastAPI:
    """The FastAPI app with every route."""
    state: dict[str, EngineGate] = {}

    def gate() -> EngineGate:
        if "gate" not in state:
            raise ApiError(503, "engine_unavailable", "the server is starting", "starting", retry_after_s=1)
        return state["gate"]

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = EngineClient(config.engine, on_status=lambda status: setattr(metrics, "engine_state", status.state))
        state["gate"] = EngineGate(client, config.limits, metrics)
        if on_engine_client is not None:
            on_engine_client(client)
        connecting = asyncio.get_running_loop().create_task(client.connect())
        try:
            yield
        finally:
            connecting.cancel()
            await client.close()

    app = FastAPI(title="Diffusion Copilot API", version=VERSION, lifespan=lifespan,
                  description="Whole-block code completions from the machine's DiffusionGemma engine "
                              "(docs/api.md).", docs_url=None, redoc_url=None)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, err: ApiError) -> Response:
        return error_response(err)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, err: RequestValidationError) -> Response:
        return error_response(bad_body(err))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException) -> Response:
        if isinstance(err.__cause__, UnicodeDecodeError):  # FastAPI's "error parsing the body" says no more
            return error_response(not_utf8(err.__cause__))
        response = error_response(ApiError(err.status_code, "invalid_request_error", str(err.detail), "http_error"))
        response.headers.update(err.headers or {})  # Allow, on a 405
        return response

    @app.get("/v1/health", response_model=Health, responses=ERRORS)
    async def health() -> Health:
        client = gate().client
        status = client.status
        summary = {EngineState.READY: "ok", EngineState.BUSY: "ok", EngineState.LOADING: "loading"}
        return Health(status=summary.get(status.state, "error"), engine=status.state.value,  # type: ignore[arg-type]
                      message=status.message, model=status.model, model_has_random_weights=status.has_random_weights,
                      kernels=status.kernels, in_flight=metrics.in_flight)

    @app.get("/v1/models", response_model=ModelList, responses=ERRORS)
    async def models() -> ModelList:
        name = gate().client.status.model or config.engine.model or "default"
        return ModelList(data=[ModelCard(id=name, created=0)])

    @app.get("/metrics", response_class=PlainTextResponse, responses=ERRORS)
    async def prometheus() -> PlainTextResponse:
        return PlainTextResponse(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.post("/v1/code/completions", response_model=CodeCompletionResponse,
              responses={**ERRORS, 200: {"content": CODE_STREAM, "description": "JSON, or events when `stream`"}})
    async def code_completions(body: CodeCompletionRequest, request: Request) -> Response:
        received = time.perf_counter()
        g = gate()
        planned = await asyncio.to_thread(  # context building parses: off the event loop, which answers health
            plan_code, body, config.settings, config.limits, pin_healed(g), engine_budget(g))
        slot = await Slot.take(g, planned.budget_s)
        if body.stream:
            return await event_stream(request, slot, EventSource(
                lambda emit: code_job(g, planned, received, emit)))

        async def answer() -> Response:
            reply = await g.run(planned)
            status = g.client.status
            result = code_response(planned, reply, status.model, status.has_random_weights, received)
            return JSONResponse(result.model_dump())

        return await slot.answer(request, answer)

    @app.post("/v1/code/edits", response_model=CodeEditResponse, responses=ERRORS)
    async def code_edits(body: CodeEditRequest, request: Request) -> Response:
        received, g = time.perf_counter(), gate()
        planned = plan_edit(body, config.settings, config.limits, g.client.status.chars_per_token)
        status = g.client.status
        if not planned.request.recent_diff:  # nothing was edited: nothing follows, and the engine is not asked
            return JSONResponse(edit_response(planned, None, status.model, status.has_random_weights, received,
                                              body.position_encoding).model_dump())
        slot = await Slot.take(g, planned.planned.budget_s)

        async def answer() -> Response:
            reply = await g.run(planned.planned)
            status = g.client.status
            return JSONResponse(edit_response(planned, reply, status.model, status.has_random_weights, received,
                                              body.position_encoding).model_dump())

        return await slot.answer(request, answer)

    @app.post("/v1/completions", response_model=OpenAICompletionResponse,
              responses={**ERRORS, 200: {"content": OPENAI_STREAM, "description": "JSON, or events when `stream`"}})
    async def completions(body: OpenAICompletionRequest, request: Request) -> Response:
        g = gate()
        extra = body.model_extra or {}
        path, language = str(extra.get("path") or "untitled"), str(extra.get("language") or "plaintext")
        stops = stop_list(body.stop)
        prompt = split_prompt(body.prompt)
        echo = prompt if body.echo else ""
        base = config.settings
        settings = replace(base, alternatives=body.n, canvas_length=body.max_tokens or base.canvas_length,
                           seed=body.seed if body.seed is not None else base.seed)
        planned = await asyncio.to_thread(plan_fill, prompt, body.suffix or "", path, language, settings,
                                          config.limits, pin_healed(g), engine_budget(g))
        model = body.model or g.client.status.model or "default"
        completion_id, created = f"cmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        slot = await Slot.take(g, planned.budget_s)
        if body.stream:
            async def chunks(emit: Emit) -> bytes:
                reply = await g.run(planned)
                *head, last = openai_chunks(completion_id, created, model, reply, stops, echo)
                for chunk in head:
                    emit(chunk)
                return last

            return await event_stream(request, slot, EventSource(chunks))

        async def answer() -> Response:
            reply = await g.run(planned)
            return JSONResponse(openai_response(completion_id, created, model, reply, stops, echo).model_dump())

        return await slot.answer(request, answer)

    def custom_openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description,
                                 routes=app.routes)
            for path in schema["paths"].values():
                for operation in path.values():
                    operation.get("responses", {}).pop("422", None)  # bad bodies answer 400
            schema.get("components", {}).get("schemas", {}).pop("HTTPValidationError", None)
            schema.get("components", {}).get("schemas", {}).pop("ValidationError", None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = custom_openapi  # type: ignore[method-assign]
    return app


def pin_healed(gate: EngineGate) -> bool:
    """As the language server does: pin what token healing cut when the weights are random."""
    return gate.client.status.has_random_weights is True


def engine_budget(gate: EngineGate) -> ContextBudget:
    """As the language server does: the context budget that fits the prompt of the engine's model."""
    status = gate.client.status
    return context_budget(status.max_prompt_tokens, status.chars_per_token)


def bad_body(err: RequestValidationError) -> ApiError:
    """A 400 naming the first field of a body that does not match the schema, and what is wrong with it."""
    raw = err.errors()
    if raw and raw[0].get("type") == "json_invalid":
        detail = (raw[0].get("ctx") or {}).get("error", "")
        return ApiError(400, "invalid_request_error", f"the body is not valid JSON: {detail} (at character "
                        f"{raw[0]['loc'][-1]})", "bad_json")
    problems = [(field_path(p.get("loc", ())), str(p.get("msg", "invalid"))) for p in raw]
    if not problems:
        return ApiError(400, "invalid_request_error", "invalid request body", "bad_request")
    where = problems[0][0]
    reasons = list(dict.fromkeys(msg for at, msg in problems if at == where))  # a union gives one per member
    others = len({at for at, _ in problems}) - 1
    message = (f"{where}: " if where else "") + "; or ".join(reasons)
    message += f" (and {others} more fields)" if others else ""
    return ApiError(400, "invalid_request_error", message, "bad_request", where or None)


def not_utf8(err: UnicodeDecodeError) -> ApiError:
    """A 400 for a body that is not UTF-8, naming the first bad byte (JSON bodies must be UTF-8, RFC 8259)."""
    return ApiError(400, "invalid_request_error", f"the body is not valid UTF-8: byte 0x{err.object[err.start]:02x} "
                    f"at offset {err.start}", "bad_json")


def field_path(loc: Any) -> str:
    """`position.line` for a validation error's location, without pydantic's union member tags."""
    return ".".join(str(p) for p in loc[1:] if not (isinstance(p, str) and UNION_TAG.match(p)))


async def code_job(gate: EngineGate, planned: Planned, received: float, emit: Emit) -> bytes:
    """Run the job, emitting draft events as the canvas denoises and line events once lines hold still; the
    final event is the response body."""
    trackers: dict[int, LineTracker] = {}
    prefix = planned.cursor.prefix

    def on_draft(step: int, texts: tuple[str, ...]) -> None:
        drafts = [draft_text(raw, prefix) for raw in texts]
        emit(sse("draft", {"step": step, "texts": drafts}))
        for index, text in enumerate(drafts):
            tracker = trackers.setdefault(index, LineTracker())
            new = tracker.update(text)
            for number, line in enumerate(new, start=len(tracker.sent) - len(new)):
                emit(sse("line", {"alternative": index, "line": number, "text": line}))

    reply = await gate.run(planned, on_draft)
    status = gate.client.status
    final = code_response(planned, reply, status.model, status.has_random_weights, received)
    return sse("final", final.model_dump())
