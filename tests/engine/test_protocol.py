"""The engine socket's wire protocol: what one end encodes, the other decodes to the same values; bad fields are
`bad_request`s; the documented error codes are the ones the engine sends."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from diffusion_copilot.engine import PromptParts
from diffusion_copilot.engine.job import Canvas, FinishReason, JobResult, Timings
from diffusion_copilot.engine.protocol import (
    EngineError,
    EngineState,
    EngineStatus,
    ErrorCode,
    RequestError,
    RunRequest,
    engine_error,
    engine_status,
    run_params,
    run_reply,
    run_reply_of,
    run_request,
    run_result,
    status_object,
)

PROTOCOL_DOC = Path(__file__).parents[2] / "docs" / "protocol.md"
SENT_BY_THE_ENGINE = {ErrorCode.BAD_REQUEST, ErrorCode.QUEUE_FULL, ErrorCode.LOAD_FAILED, ErrorCode.CANCELLED,
                      ErrorCode.ENGINE_ERROR}


def test_a_run_request_reads_back_as_written() -> None:
    request = RunRequest(PromptParts("a.py", "python", "x = ", "\n", "ctx"), canvas_length=16, max_steps=4,
                         alternatives=2, time_budget_s=0.5, seed=7, pin_healed=True, drafts=True)
    assert run_request(run_params(request)) == request
    assert request.job.canvas_length == 16 and request.job.alternatives == 2 and request.job.prompt_ids == ()


@pytest.mark.parametrize("params", [
    {},
    {"prompt": "text"},
    {"prompt": {"path": 3}},
    {"prompt": {"prefix": "\ud800"}},
    {"prompt": {}, "canvas_length": "long"},
    {"prompt": {}, "seed": True},
    {"prompt": {}, "max_steps": 1.5},
])
def test_bad_fields_are_bad_requests(params: dict[str, object]) -> None:
    with pytest.raises(RequestError) as caught:
        run_request(params)
    assert caught.value.code is ErrorCode.BAD_REQUEST


def test_a_result_reads_back_as_the_reply_it_was_made_from() -> None:
    canvas = Canvas(token_ids=(1, 2), text="  ab", confidence=(0.91234, 0.5), steps=3,
                    finish_reason=FinishReason.CONVERGED, hit_eos=True, entropy=(0.12345, 2.0))
    result = JobResult(canvases=(canvas,), timings=Timings(queue_ms=1.0, prefill_ms=2.0, step_ms=(1.0,) * 3,
                                                            total_ms=9.0), healed="  ")
    reply = run_reply_of(result, 0.0, lambda ids: {1: "  a", 2: "b"}[ids[-1]] if len(ids) == 1 else "  ab")
    assert reply.canvases[0].completion == "ab" and reply.canvases[0].confidence == (0.912, 0.5)
    assert reply.canvases[0].entropy == (0.123, 2.0)
    assert reply.finish_reason is FinishReason.CONVERGED and reply.steps == 3
    assert run_reply(run_result(reply)) == reply


def test_a_malformed_result_is_a_bad_reply() -> None:
    error = run_reply({"canvases": [], "healed": "", "finish_reason": "bored", "timings": {}})
    assert isinstance(error, EngineError) and error.code is ErrorCode.BAD_REPLY


def test_error_codes_unknown_to_the_client_read_as_engine_errors() -> None:
    assert engine_error({"code": "queue_full", "message": "busy"}) == EngineError(ErrorCode.QUEUE_FULL, "busy")
    assert engine_error({"code": "new_in_v9"}).code is ErrorCode.ENGINE_ERROR
    assert engine_error(None).code is ErrorCode.ENGINE_ERROR


def test_a_status_reads_back_as_written() -> None:
    status = EngineStatus(EngineState.READY, "ready", "default", False, 2048, 3.5, pid=42, queue=2, gate='{"v": 1}')
    assert engine_status(status_object(status)) == status
    assert engine_status({"state": "asleep"}).state is EngineState.ERROR


def test_the_doc_lists_the_error_codes_the_engine_sends() -> None:
    text = PROTOCOL_DOC.read_text()
    replies = text[text.index('Replies: `{"id": ID, "result"'):]
    listed = replies[:replies.index("The client reports")]
    assert set(re.findall(r"`([a-z_]+)`", listed)) == {code.value for code in SENT_BY_THE_ENGINE}
