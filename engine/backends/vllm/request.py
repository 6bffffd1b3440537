"""A `Job` as a vLLM `/v1/completions` request, and the server-sent events of its answer folded back into
canvases. Pure functions over plain data: no sockets here.

The diffusion controls travel in `vllm_xargs` (vLLM ≥ 0.33 copies them into `SamplingParams.extra_args`, where
DiffusionGemma's sampler reads them). vLLM pins positions of a *seed canvas*, so pins without a seed canvas get
one whose unpinned positions are uniform-random tokens, as DiffusionGemma's own initial canvas is.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass, field
from typing import Any

from ...job import Canvas, FinishReason, Job, job_problem

# The per-request keys DiffusionGemma's sampler reads from vLLM 0.33's `extra_args`.
DIFFUSION_MAX_STEPS = "diffusion_max_steps"
DIFFUSION_CANVAS_LENGTH = "diffusion_canvas_length"
DIFFUSION_SEED_CANVAS = "diffusion_seed_canvas"
DIFFUSION_PINNED = "diffusion_pinned"
DIFFUSION_READ_ONLY = "diffusion_read_only"
DIFFUSION_XARGS = (
    DIFFUSION_MAX_STEPS,
    DIFFUSION_CANVAS_LENGTH,
    DIFFUSION_SEED_CANVAS,
    DIFFUSION_PINNED,
    DIFFUSION_READ_ONLY,
)


def seed_canvas(job: Job, vocab_size: int) -> list[int] | None:
    """The canvas vLLM starts from: the job's seed canvas (or uniform noise when only pins are given), with the
    pinned tokens written in; None when the job has neither."""
    if job.seed_canvas is None and not job.pins:
        return None
    if job.seed_canvas is not None:
        canvas = list(job.seed_canvas)
    else:
        rng = random.Random(job.seed)
        canvas = [rng.randrange(vocab_size) for _ in range(job.canvas_length)]
    for position, token in job.pins:
        canvas[position] = token
    return canvas


def validation_error(job: Job, vocab_size: int, served_canvas_length: int | None) -> str | None:
    """Why vLLM would refuse `job`, or None. Checked here so that a bad job never reaches the server."""
    if served_canvas_length is not None and job.canvas_length > served_canvas_length:
        return f"canvas_length {job.canvas_length} exceeds the served canvas of {served_canvas_length}"
    return job_problem(job, vocab_size)


def completion_body(job: Job, model: str, vocab_size: int) -> dict[str, Any]:
    """The JSON body of `POST /v1/completions` for `job` (streamed, token ids and log-probabilities returned)."""
    xargs: dict[str, Any] = {DIFFUSION_CANVAS_LENGTH: job.canvas_length}
    if job.max_steps is not None:
        xargs[DIFFUSION_MAX_STEPS] = job.max_steps
    canvas = seed_canvas(job, vocab_size)
    if canvas is not None:
        xargs[DIFFUSION_SEED_CANVAS] = canvas
    if job.pins:
        xargs[DIFFUSION_PINNED] = sorted({p for p, _ in job.pins})
    if job.max_canvases == 1:
        xargs[DIFFUSION_READ_ONLY] = True  # one canvas is the whole answer: skip the commit forward
    body: dict[str, Any] = {
        "model": model,
        "prompt": list(job.prompt_ids),
        "max_tokens": job.canvas_length * job.max_canvases,
        "n": job.alternatives,
        "stream": True,
        "stream_options": {"include_usage": True},
        "logprobs": 0,  # the chosen token's log-probability only
        "return_token_ids": True,
        "skip_special_tokens": True,
        "vllm_xargs": xargs,
    }
    if job.seed is not None:
        body["seed"] = job.seed
    return body


def sse_data(line: str) -> Any | None:
    """The JSON payload of one server-sent-events line; None for other lines and for `[DONE]`."""
    if not line.startswith("data:"):
        return None
    payload = line[5:].strip()
    if not payload or payload == "[DONE]":
        return None
    return json.loads(payload)


def server_error_text(status: int, body: bytes) -> str:
    """vLLM's own message for an error response, else the start of the body."""
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return f"HTTP {status}: {body[:200].decode(errors='replace')}"
    if isinstance(data, dict):
        error = data.get("error", data)
        message = error.get("message") if isinstance(error, dict) else error
        if message:
            return f"HTTP {status}: {message}"
    return f"HTTP {status}: {str(data)[:200]}"


@dataclass
class _Alternative:
    token_ids: list[int] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    confidence: list[float] = field(default_factory=list)
    finish_reason: str | None = None


@dataclass
class StreamedCompletion:
    """The canvases of one streamed completion as its chunks arrive (one owner: the request's task)."""

    alternatives: int
    eos_ids: frozenset[int]
    chunks: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    rows: list[_Alternative] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rows = [_Alternative() for _ in range(self.alternatives)]

    def add(self, chunk: dict[str, Any]) -> None:
        """Fold one `text_completion` chunk in."""
        self.chunks += 1
        usage = chunk.get("usage") or {}
        self.prompt_tokens = usage.get("prompt_tokens", self.prompt_tokens)
        details = usage.get("prompt_tokens_details") or {}
        self.cached_tokens = details.get("cached_tokens") or self.cached_tokens
        for choice in chunk.get("choices") or ():
            index = choice.get("index", 0)
            if not 0 <= index < len(self.rows):
                continue
            row = self.rows[index]
            ids = choice.get("token_ids") or []
            row.token_ids.extend(ids)
            row.text.append(choice.get("text") or "")
            logprobs = (choice.get("logprobs") or {}).get("token_logprobs") or []
            row.confidence.extend(math.exp(lp) if lp is not None else 0.0 for lp in logprobs)
            if choice.get("finish_reason") is not None:
                row.finish_reason = choice["finish_reason"]

    def drafts(self) -> list[list[int]]:
        """The tokens of each alternative so far."""
        return [list(row.token_ids) for row in self.rows]

    def canvases(self, reason: FinishReason, decode: Any) -> tuple[Canvas, ...]:
        """Each alternative cut at its first end-of-sequence token, decoded with `decode(ids) -> str`."""
        out = []
        for row in self.rows:
            end = next((i for i, t in enumerate(row.token_ids) if t in self.eos_ids), None)
            ids = row.token_ids if end is None else row.token_ids[:end]
            hit_eos = end is not None or row.finish_reason == "stop"
            text = decode(ids) if row.token_ids else "".join(row.text)
            # a server that returned no log-probabilities leaves the confidence unknown: counted as certain
            confidence = row.confidence[: len(ids)] + [1.0] * max(len(ids) - len(row.confidence), 0)
            out.append(
                Canvas(
                    token_ids=tuple(ids),
                    text=text,
                    confidence=tuple(confidence),
                    steps=0,  # vLLM does not report denoising steps
                    finish_reason=reason,
                    hit_eos=hit_eos,
                )
            )
        return tuple(out)
