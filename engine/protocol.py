"""The engine socket's wire protocol (docs/protocol.md), shared by the engine process and its clients: the
messages that cross it, the error codes and engine states, and their JSON encoding and decoding. Plain data,
no I/O; imports no torch, so the language server uses it as it is.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from .job import FinishReason, Job, JobResult
from .prompt.detokenize import Decode, token_texts
from .prompt.edit import EditWindow
from .prompt.layout import PromptParts, strip_healed


class ErrorCode(StrEnum):
    """Why a request got no result: the engine sends the first five, a client reports the last three itself."""

    BAD_REQUEST = "bad_request"  # not JSON, an unknown method, a field of the wrong type
    QUEUE_FULL = "queue_full"
    LOAD_FAILED = "load_failed"
    CANCELLED = "cancelled"
    ENGINE_ERROR = "engine_error"
    START_FAILED = "start_failed"  # the engine process could not be started
    ENGINE_LOST = "engine_lost"  # the connection to the engine broke
    BAD_REPLY = "bad_reply"  # the engine's reply was malformed


class EngineState(StrEnum):
    LOADING = "loading"
    READY = "ready"
    BUSY = "busy"
    ERROR = "error"


class RequestError(Exception):
    """A request the engine cannot take, with the error code to answer it with."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class EngineError:
    """Why the engine gave no result."""

    code: ErrorCode
    message: str


@dataclass(frozen=True)
class EngineStatus:
    """What the engine process says about itself, relayed unchanged to status bars."""

    state: EngineState
    message: str
    model: str | None = None
    has_random_weights: bool | None = None
    max_prompt_tokens: int | None = None  # the longest prompt the model takes; None until it has loaded
    chars_per_token: float | None = None  # characters of code per prompt token, for sizing prompt text
    pid: int | None = None
    queue: int = 0  # requests waiting for the worker
    kernels: str | None = None  # which kernels the model runs on, and why (`kernels.report`); None until loaded
    gate: str | None = None  # the text of the checkpoint's gate.json (the server reads it); None: it has none


@dataclass(frozen=True)
class RunRequest:
    """One completion job."""

    prompt: PromptParts
    canvas_length: int = 32
    max_steps: int | None = None
    alternatives: int = 1
    time_budget_s: float | None = None
    seed: int | None = None
    pin_healed: bool = False  # pin the characters token healing cut, so every canvas re-creates them
    drafts: bool = False  # the engine sends the argmax canvas texts after every step
    edit: EditWindow | None = None  # an edit job: the canvas starts from this window (prompt: the text around it)

    @property
    def job(self) -> Job:
        """The engine `Job` this asks for, before its prompt is encoded."""
        return Job(prompt_ids=(), canvas_length=self.canvas_length, max_steps=self.max_steps,
                   alternatives=self.alternatives, time_budget_s=self.time_budget_s, seed=self.seed)


@dataclass(frozen=True)
class RunCanvas:
    """One alternative: the raw canvas text, and the text to insert (None when it does not re-create the
    characters the prompt cut from the prefix)."""

    text: str
    completion: str | None
    confidence: tuple[float, ...]  # per token
    steps: int
    finish_reason: FinishReason
    hit_eos: bool
    token_chars: tuple[int, ...] = ()  # characters of `text` each token adds; () from an engine that does not say
    entropy: tuple[float, ...] = ()  # per token, in nats; () from an engine (or backend) that does not say

    @property
    def token_texts(self) -> tuple[str, ...] | None:
        """The text each token adds (joined: `text`), one per confidence value; None when the engine did not say."""
        counts = self.token_chars
        if not counts or len(counts) != len(self.confidence) or sum(counts) != len(self.text) or min(counts) < 0:
            return None
        ends = itertools.accumulate(counts)
        return tuple(self.text[end - count:end] for end, count in zip(ends, counts, strict=True))


@dataclass(frozen=True)
class RunReply:
    """The engine's answer to a `RunRequest`, with where its time went."""

    canvases: tuple[RunCanvas, ...]
    healed: str
    finish_reason: FinishReason
    queue_ms: float
    encode_ms: float
    prefill_ms: float
    total_ms: float
    steps: int


def run_params(request: RunRequest) -> dict[str, Any]:
    """The `params` of a `run` request."""
    p = request.prompt
    return {
        "prompt": {"path": p.path, "language": p.language, "prefix": p.prefix, "suffix": p.suffix,
                   "context": p.context},
        "canvas_length": request.canvas_length,
        "max_steps": request.max_steps,
        "alternatives": request.alternatives,
        "time_budget_s": request.time_budget_s,
        "seed": request.seed,
        "pin_healed": request.pin_healed,
        "drafts": request.drafts,
        **({} if request.edit is None else {"edit": {"window": request.edit.text,
                                                      "recent_edits": request.edit.recent_edits,
                                                      "renoise": request.edit.renoise}}),
    }


def run_request(params: dict[str, Any]) -> RunRequest:
    """The `RunRequest` of a `run` request's params; RequestError for a missing field or one of the wrong type."""
    return RunRequest(
        prompt=_prompt(params),
        canvas_length=_number(params, "canvas_length", int) or 32,
        max_steps=_number(params, "max_steps", int),
        alternatives=_number(params, "alternatives", int) or 1,
        time_budget_s=_number(params, "time_budget_s", float),
        seed=_number(params, "seed", int),
        pin_healed=params.get("pin_healed") is True,
        drafts=params.get("drafts") is True,
        edit=_edit(params),
    )


def _edit(params: dict[str, Any]) -> EditWindow | None:
    """The `EditWindow` of a `run` request's optional `edit` object; RequestError when it is malformed."""
    edit = params.get("edit")
    if edit is None:
        return None
    if not isinstance(edit, dict) or not isinstance(edit.get("window"), str) or \
            not isinstance(edit.get("recent_edits", ""), str):
        raise RequestError(ErrorCode.BAD_REQUEST, "edit needs a window string (and recent_edits as a string)")
    renoise = _number(edit, "renoise", float)
    if renoise is not None and not 0.0 <= renoise <= 1.0:
        raise RequestError(ErrorCode.BAD_REQUEST, "edit.renoise must be between 0 and 1")
    return EditWindow(text=edit["window"], recent_edits=edit.get("recent_edits", ""),
                      renoise=0.25 if renoise is None else renoise)


def _number(params: dict[str, Any], name: str, kind: type[int] | type[float]) -> Any:
    """The optional number `name` of a request; RequestError when it is not one of `kind`."""
    value = params.get(name)
    if value is None:
        return None
    wrong_kind = kind is int and not isinstance(value, int)
    if isinstance(value, bool) or not isinstance(value, int | float) or wrong_kind:
        raise RequestError(ErrorCode.BAD_REQUEST, f"{name} must be {'an integer' if kind is int else 'a number'}")
    return kind(value)


def _prompt(params: dict[str, Any]) -> PromptParts:
    """The `PromptParts` of a `run` request; RequestError when a field is missing, not a string or not Unicode."""
    prompt = params.get("prompt")
    if not isinstance(prompt, dict):
        raise RequestError(ErrorCode.BAD_REQUEST, "run needs a prompt object")
    values = {name: prompt.get(name, "") for name in ("path", "language", "prefix", "suffix", "context")}
    if not all(isinstance(v, str) for v in values.values()):
        raise RequestError(ErrorCode.BAD_REQUEST, "prompt fields must be strings")
    for name, value in values.items():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as err:  # JSON can escape a lone surrogate; no tokenizer can take one
            raise RequestError(ErrorCode.BAD_REQUEST, f"prompt.{name} is not valid Unicode (a lone surrogate at "
                               f"character {err.start}); the language server and the API replace them with U+FFFD"
                               ) from None
    return PromptParts(**values)


def rows_of(params: dict[str, Any]) -> int:
    """The canvases a `run` request asks for, as the batch counts them (1 for anything but a positive integer)."""
    value = params.get("alternatives")
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 1


def run_reply_of(result: JobResult, started: float, decode: Decode) -> RunReply:
    """The reply for a `JobResult` whose request reached the engine at `started` (perf_counter); `decode` gives
    the characters each token adds to the text."""
    wall_ms = (time.perf_counter() - started) * 1000
    encode_ms = max(wall_ms - result.timings.total_ms - result.timings.queue_ms, 0.0)  # encoding the prompts
    canvases = tuple(
        RunCanvas(text=c.text, completion=strip_healed(c.text, result.healed),
                  confidence=tuple(round(p, 3) for p in c.confidence), steps=c.steps,
                  finish_reason=c.finish_reason, hit_eos=c.hit_eos,
                  token_chars=tuple(len(piece) for piece in token_texts(decode, c.token_ids, c.text)),
                  entropy=tuple(round(h, 3) for h in c.entropy))
        for c in result.canvases
    )
    return RunReply(canvases=canvases, healed=result.healed, finish_reason=result.finish_reason,
                    queue_ms=result.timings.queue_ms, encode_ms=encode_ms, prefill_ms=result.timings.prefill_ms,
                    total_ms=result.timings.total_ms, steps=result.steps)


def run_result(reply: RunReply) -> dict[str, Any]:
    """The `result` of a `run` reply."""
    return {
        "canvases": [
            {"text": c.text, "completion": c.completion, "confidence": list(c.confidence),
             "token_chars": list(c.token_chars), "entropy": list(c.entropy), "steps": c.steps,
             "finish_reason": c.finish_reason.value, "hit_eos": c.hit_eos}
            for c in reply.canvases
        ],
        "healed": reply.healed,
        "finish_reason": reply.finish_reason.value,
        "timings": {"queue_ms": reply.queue_ms, "encode_ms": reply.encode_ms, "prefill_ms": reply.prefill_ms,
                    "total_ms": reply.total_ms, "steps": reply.steps},
    }


def run_reply(raw: dict[str, Any]) -> RunReply | EngineError:
    """A `RunReply` from a `run` result, or an `EngineError` when the result is malformed."""
    try:
        timings = raw["timings"]
        canvases = tuple(
            RunCanvas(text=str(c["text"]), completion=c["completion"],
                      confidence=tuple(float(p) for p in c["confidence"]), steps=int(c["steps"]),
                      finish_reason=FinishReason(c["finish_reason"]), hit_eos=bool(c["hit_eos"]),
                      token_chars=tuple(int(n) for n in c.get("token_chars", ())),
                      entropy=tuple(float(h) for h in c.get("entropy", ())))
            for c in raw["canvases"]
        )
        return RunReply(canvases=canvases, healed=str(raw["healed"]), finish_reason=FinishReason(raw["finish_reason"]),
                        queue_ms=float(timings["queue_ms"]), encode_ms=float(timings["encode_ms"]),
                        prefill_ms=float(timings["prefill_ms"]), total_ms=float(timings["total_ms"]),
                        steps=int(timings["steps"]))
    except (KeyError, TypeError, ValueError) as err:
        return EngineError(ErrorCode.BAD_REPLY, f"malformed reply from the engine: {err!r}")


def error_message(request_id: Any, code: ErrorCode, text: str) -> dict[str, Any]:
    """An error reply."""
    return {"id": request_id, "error": {"code": code.value, "message": text}}


def engine_error(raw: Any) -> EngineError:
    """The `EngineError` of an error reply's `error` object (an unknown code reads as `engine_error`)."""
    raw = raw if isinstance(raw, dict) else {}
    try:
        code = ErrorCode(raw.get("code"))
    except ValueError:
        code = ErrorCode.ENGINE_ERROR
    return EngineError(code, str(raw.get("message", "")))


def status_object(status: EngineStatus) -> dict[str, Any]:
    """The status object of a `status` reply or event."""
    return {
        "state": status.state.value,
        "message": status.message,
        "model": status.model,
        "has_random_weights": status.has_random_weights,
        "max_prompt_tokens": status.max_prompt_tokens,
        "chars_per_token": status.chars_per_token,
        "pid": status.pid,
        "queue": status.queue,
        "kernels": status.kernels,
        "gate": status.gate,
    }


def engine_status(raw: dict[str, Any]) -> EngineStatus:
    """An `EngineStatus` from the engine's status object (an unknown state reads as `error`)."""
    try:
        state = EngineState(str(raw.get("state")))
    except ValueError:
        state = EngineState.ERROR
    weights, pid, queue = raw.get("has_random_weights"), raw.get("pid"), raw.get("queue")
    tokens, chars = _positive(raw.get("max_prompt_tokens")), _positive(raw.get("chars_per_token"))
    return EngineStatus(state, str(raw.get("message", "")), raw.get("model"),
                        weights if isinstance(weights, bool) else None, int(tokens) if tokens else None, chars,
                        pid if isinstance(pid, int) and not isinstance(pid, bool) else None,
                        queue if isinstance(queue, int) and not isinstance(queue, bool) else 0,
                        kernels if isinstance(kernels := raw.get("kernels"), str) else None,
                        gate if isinstance(gate := raw.get("gate"), str) else None)


def _positive(value: Any) -> float | None:
    """A positive number of the wire, else None (an older engine leaves it out)."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) and value > 0 else None
