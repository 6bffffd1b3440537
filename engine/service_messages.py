"""The engine process's wire messages: `run` requests read into prompts and jobs (with the protocol's error codes
for bad fields), and results and errors written as replies (docs/protocol.md). No sockets, no threads.
"""

from __future__ import annotations

import time
from typing import Any

from .detokenize import Decode, token_texts
from .job import Job, JobResult
from .prompt import PromptParts, strip_healed


class RequestError(Exception):
    """A request the service cannot take; `code` is one of docs/protocol.md's error codes."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _number(params: dict[str, Any], name: str, kind: type[int] | type[float]) -> Any:
    """The optional number `name` of a request; RequestError when it is not one of `kind`."""
    value = params.get(name)
    if value is None:
        return None
    wrong_kind = kind is int and not isinstance(value, int)
    if isinstance(value, bool) or not isinstance(value, int | float) or wrong_kind:
        raise RequestError("bad_request", f"{name} must be {'an integer' if kind is int else 'a number'}")
    return kind(value)


def job_from_params(params: dict[str, Any], prompt_ids: tuple[int, ...]) -> Job:
    """The engine `Job` a `run` request asks for; RequestError for fields of the wrong type."""
    return Job(
        prompt_ids=prompt_ids,
        canvas_length=_number(params, "canvas_length", int) or 32,
        max_steps=_number(params, "max_steps", int),
        alternatives=_number(params, "alternatives", int) or 1,
        time_budget_s=_number(params, "time_budget_s", float),
        seed=_number(params, "seed", int),
    )


def prompt_from_params(params: dict[str, Any]) -> PromptParts:
    """The `PromptParts` of a `run` request; RequestError when a field is missing, not a string or not Unicode."""
    prompt = params.get("prompt")
    if not isinstance(prompt, dict):
        raise RequestError("bad_request", "run needs a prompt object")
    values = {name: prompt.get(name, "") for name in ("path", "language", "prefix", "suffix", "context")}
    if not all(isinstance(v, str) for v in values.values()):
        raise RequestError("bad_request", "prompt fields must be strings")
    for name, value in values.items():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as err:  # JSON can escape a lone surrogate; no tokenizer can take one
            raise RequestError("bad_request", f"prompt.{name} is not valid Unicode (a lone surrogate at character "
                               f"{err.start}); the language server and the API replace them with U+FFFD") from None
    return PromptParts(**values)


def rows_of(params: dict[str, Any]) -> int:
    """The canvases a `run` request asks for, as the batch counts them (1 for anything but a positive integer)."""
    value = params.get("alternatives")
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 1


def error_message(request_id: Any, code: str, text: str) -> dict[str, Any]:
    """An error reply; `code` is one of docs/protocol.md's error codes."""
    return {"id": request_id, "error": {"code": code, "message": text}}


def encoding_ms(result: JobResult, started: float) -> float:
    """Time in the engine since `started` (perf_counter) outside the queue and the denoising loop: encoding the
    prompts."""
    wall_ms = (time.perf_counter() - started) * 1000
    return max(wall_ms - result.timings.total_ms - result.timings.queue_ms, 0.0)


def result_message(result: JobResult, healed: str, encode_ms: float, decode: Decode) -> dict[str, Any]:
    """A `JobResult` as the wire's run result; `decode` gives the characters each token adds to the text."""
    return {
        "canvases": [
            {
                "text": c.text,
                "completion": strip_healed(c.text, healed),
                "confidence": [round(p, 3) for p in c.confidence],
                "token_chars": [len(piece) for piece in token_texts(decode, c.token_ids, c.text)],
                "steps": c.steps,
                "finish_reason": c.finish_reason.value,
                "hit_eos": c.hit_eos,
            }
            for c in result.canvases
        ],
        "healed": healed,
        "finish_reason": result.finish_reason.value,
        "timings": {
            "queue_ms": result.timings.queue_ms,
            "encode_ms": encode_ms,
            "prefill_ms": result.timings.prefill_ms,
            "total_ms": result.timings.total_ms,
            "steps": result.steps,
        },
    }
