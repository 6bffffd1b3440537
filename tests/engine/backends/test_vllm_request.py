"""The `vllm` backend's request mapping and stream folding, and the contract with vLLM 0.33's request schema
(tests/fixtures/vllm-0.33.0-contract.json, extracted from the vllm 0.33.0 wheel by tests/harness/vllm_contract.py)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from diffusion_copilot.engine import FinishReason, Job
from diffusion_copilot.engine.backends.vllm.replicas import ReplicaSet, normalized_url
from diffusion_copilot.engine.backends.vllm.request import (
    DIFFUSION_XARGS,
    StreamedCompletion,
    completion_body,
    seed_canvas,
    server_error_text,
    sse_data,
    validation_error,
)
from diffusion_copilot.engine.backends.vllm.served_model import DIFFUSION_ARCHITECTURE

CONTRACT = json.loads((Path(__file__).parents[2] / "fixtures" / "vllm-0.33.0-contract.json").read_text())
VOCAB = 1000

JOBS = {
    "plain": Job(prompt_ids=(5, 6, 7), canvas_length=32),
    "steps and alternatives": Job(prompt_ids=(5,), canvas_length=64, max_steps=12, alternatives=4, seed=3),
    "several canvases": Job(prompt_ids=(5,), canvas_length=16, max_canvases=4),
    "pins only": Job(prompt_ids=(5,), canvas_length=8, pins=((0, 11), (7, 12)), seed=1),
    "seed canvas and pins": Job(prompt_ids=(5,), canvas_length=4, seed_canvas=(1, 2, 3, 4), pins=((1, 99),)),
}


class _ValidationError(Exception):
    pass


def vllm_admission(body: dict[str, Any], served_canvas: int) -> SimpleNamespace:
    """vLLM 0.33's own admission check, run on the sampling params our body turns into."""
    namespace: dict[str, Any] = {"VLLMValidationError": lambda message, parameter: _ValidationError(message)}
    exec(CONTRACT["validate_diffusion_sampling_params"], namespace)
    params = SimpleNamespace(
        extra_args=dict(body["vllm_xargs"]), max_tokens=body["max_tokens"], ignore_eos=False, logprob_token_ids=None
    )
    namespace["validate_diffusion_sampling_params"](params, canvas_length=served_canvas, vocab_size=VOCAB)
    return params


@pytest.mark.parametrize("name", JOBS)
def test_bodies_match_the_vllm_033_request_schema(name: str) -> None:
    body = completion_body(JOBS[name], "google/diffusiongemma-26B-A4B-it", VOCAB)
    assert set(body) <= set(CONTRACT["completion_request_fields"])
    assert set(body["vllm_xargs"]) <= set(CONTRACT["diffusion_extra_args"])
    assert CONTRACT["vllm_xargs_annotation"] == "dict[str, str | int | float | list[str | int | float]] | None"
    for value in body["vllm_xargs"].values():  # the annotation's value types
        assert isinstance(value, str | int | float) or all(isinstance(v, str | int | float) for v in value)
    vllm_admission(body, served_canvas=256)


def test_our_diffusion_keys_are_the_ones_vllm_reads() -> None:
    assert set(DIFFUSION_XARGS) <= set(CONTRACT["diffusion_extra_args"])
    assert CONTRACT["registry"][DIFFUSION_ARCHITECTURE] == ["diffusion_gemma", "DiffusionGemmaForConditionalGeneration"]
    assert {"token_ids", "logprobs", "finish_reason", "index", "text"} <= set(CONTRACT["stream_choice_fields"])
    assert "token_logprobs" in CONTRACT["logprobs_fields"]


def test_the_contract_check_catches_a_bad_body() -> None:
    body = completion_body(JOBS["pins only"], "m", VOCAB)
    del body["vllm_xargs"]["diffusion_seed_canvas"]
    with pytest.raises(_ValidationError, match="needs a diffusion_seed_canvas"):
        vllm_admission(body, served_canvas=256)
    with pytest.raises(_ValidationError, match="no larger than the served canvas"):
        vllm_admission(completion_body(JOBS["plain"], "m", VOCAB), served_canvas=16)


def test_one_canvas_is_read_only_and_capped_at_the_canvas() -> None:
    body = completion_body(JOBS["plain"], "m", VOCAB)
    assert body["vllm_xargs"]["diffusion_read_only"] is True
    assert vllm_admission(body, served_canvas=256).max_tokens == 32
    several = completion_body(JOBS["several canvases"], "m", VOCAB)
    assert "diffusion_read_only" not in several["vllm_xargs"]
    assert several["max_tokens"] == 64


def test_job_fields_map_to_request_fields() -> None:
    body = completion_body(JOBS["steps and alternatives"], "served", VOCAB)
    assert body["model"] == "served"
    assert body["prompt"] == [5]
    assert body["n"] == 4
    assert body["seed"] == 3
    assert body["stream"] is True
    assert body["vllm_xargs"] == {"diffusion_canvas_length": 64, "diffusion_max_steps": 12, "diffusion_read_only": True}


def test_pins_ride_on_a_seed_canvas() -> None:
    canvas = seed_canvas(JOBS["pins only"], VOCAB)
    assert canvas is not None and len(canvas) == 8
    assert canvas[0] == 11 and canvas[7] == 12
    assert all(0 <= t < VOCAB for t in canvas)
    assert seed_canvas(JOBS["pins only"], VOCAB) == canvas  # the job's seed fixes the noise
    assert seed_canvas(JOBS["seed canvas and pins"], VOCAB) == [1, 99, 3, 4]
    assert seed_canvas(JOBS["plain"], VOCAB) is None
    body = completion_body(JOBS["seed canvas and pins"], "m", VOCAB)
    assert body["vllm_xargs"]["diffusion_pinned"] == [1]


@pytest.mark.parametrize(
    ("job", "message"),
    [
        (Job(prompt_ids=()), "empty prompt"),
        (Job(prompt_ids=(VOCAB,)), "prompt token ids"),
        (Job(prompt_ids=(1,), canvas_length=0), "canvas_length"),
        (Job(prompt_ids=(1,), max_steps=0), "max_steps"),
        (Job(prompt_ids=(1,), alternatives=17), "alternatives"),
        (Job(prompt_ids=(1,), canvas_length=4, pins=((4, 1),)), "pins"),
        (Job(prompt_ids=(1,), canvas_length=4, seed_canvas=(1, 2)), "seed_canvas"),
    ],
)
def test_bad_jobs_never_reach_the_server(job: Job, message: str) -> None:
    problem = validation_error(job, VOCAB, 256)
    assert problem is not None and message in problem
    assert validation_error(Job(prompt_ids=(1,), canvas_length=300), VOCAB, 256) is not None
    assert validation_error(JOBS["seed canvas and pins"], VOCAB, 256) is None


def chunk(index: int, ids: list[int], logprobs: list[float], finish: str | None = None) -> dict[str, Any]:
    return {"choices": [{"index": index, "text": "", "token_ids": ids, "finish_reason": finish,
                         "logprobs": {"token_logprobs": logprobs}}]}  # fmt: skip


def test_stream_folds_into_canvases_cut_at_eos() -> None:
    stream = StreamedCompletion(alternatives=2, eos_ids=frozenset({1}))
    stream.add(chunk(0, [10, 11], [0.0, math.log(0.5)]))
    stream.add(chunk(1, [20], [math.log(0.25)]))
    stream.add(chunk(0, [1, 12], [0.0, 0.0], "length"))
    stream.add(chunk(1, [21], [0.0], "length"))
    stream.add({"choices": [], "usage": {"prompt_tokens": 7, "prompt_tokens_details": {"cached_tokens": 4}}})
    assert stream.drafts() == [[10, 11, 1, 12], [20, 21]]
    first, second = stream.canvases(FinishReason.CONVERGED, lambda ids: " ".join(map(str, ids)))
    assert (first.token_ids, first.text, first.hit_eos) == ((10, 11), "10 11", True)
    assert first.confidence == pytest.approx((1.0, 0.5))
    assert (second.token_ids, second.hit_eos, second.finish_reason) == ((20, 21), False, FinishReason.CONVERGED)
    assert (stream.prompt_tokens, stream.cached_tokens) == (7, 4)


def test_server_sent_events_and_errors() -> None:
    assert sse_data('data: {"a": 1}') == {"a": 1}
    assert sse_data("data: [DONE]") is None
    assert sse_data(": keep-alive") is None
    assert server_error_text(400, b'{"error": {"message": "too long", "type": "BadRequestError"}}') == (
        "HTTP 400: too long"
    )
    assert server_error_text(404, b'{"object": "error", "message": "no such model"}') == "HTTP 404: no such model"
    assert server_error_text(502, b"<html>bad gateway</html>").startswith("HTTP 502: <html>")


def test_least_busy_routing_skips_failed_replicas_until_their_backoff_ends() -> None:
    replicas = ReplicaSet(("http://a:1/v1", "http://b:1/", "http://a:1"), backoff_s=1.0)
    a, b = replicas.replicas
    assert [r.url for r in replicas.replicas] == ["http://a:1", "http://b:1"]
    a.in_flight = 2
    assert replicas.pick(now=0.0) is b
    b.in_flight = 3
    assert replicas.pick(now=0.0) is a
    replicas.mark_failed(a, "refused", now=0.0)
    assert replicas.pick(now=0.5) is b  # a is backing off
    assert replicas.pick(now=1.5) is a  # due for a retry, and less busy
    replicas.mark_failed(a, "refused", now=1.5)
    assert a.retry_at == 3.5  # the back-off doubles
    replicas.mark_failed(b, "refused", now=1.5)
    assert replicas.pick(now=1.6) is b  # all down: the one due back first
    replicas.mark_ok(a)
    assert replicas.pick(now=1.6, avoid=frozenset({"http://a:1"})) is a  # nothing else usable
    with pytest.raises(ValueError):
        normalized_url("localhost:8000")
