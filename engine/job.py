"""The units of work that flow through the engine: a `Job` in, a `JobResult` out.

Plain frozen values only; nothing here touches torch, so they cross process boundaries as they are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class FinishReason(StrEnum):
    """Why the denoising of a job ended."""

    CONVERGED = "converged"  # argmax canvas stable and confident
    STEP_CAP = "step_cap"  # ran the maximum number of steps
    DEADLINE = "deadline"  # the wall-clock budget ran out; the latest draft is returned
    CANCELLED = "cancelled"  # the caller cancelled between steps
    ERROR = "error"  # see JobResult.error


@dataclass(frozen=True)
class Job:
    """One completion request as the engine sees it: token ids in, canvases out."""

    prompt_ids: tuple[int, ...]
    canvas_length: int = 32
    max_steps: int | None = None  # None: the checkpoint's max_denoising_steps
    alternatives: int = 1  # canvases denoised together, sharing one prompt encoding
    max_canvases: int = 1  # >1 continues block by block until EOS (whole bodies longer than a canvas)
    pins: tuple[tuple[int, int], ...] = ()  # (canvas position, token id) held fixed while denoising
    seed_canvas: tuple[int, ...] | None = None  # warm start: initial tokens of the first canvas
    time_budget_s: float | None = None  # wall-clock budget from the start of the job
    seed: int | None = None  # fixes the sampler's randomness


@dataclass(frozen=True)
class Canvas:
    """One denoised alternative: tokens up to EOS, their text, per-token confidence and entropy."""

    token_ids: tuple[int, ...]
    text: str
    confidence: tuple[float, ...]  # probability of each emitted token at its last step
    steps: int  # denoising steps this alternative used
    finish_reason: FinishReason
    hit_eos: bool
    entropy: tuple[float, ...] = ()  # entropy (nats) of each emitted token's distribution at its last step; () unknown


@dataclass(frozen=True)
class Timings:
    """Where the time of one job went, in milliseconds."""

    queue_ms: float = 0.0
    prefill_ms: float = 0.0
    step_ms: tuple[float, ...] = ()
    total_ms: float = 0.0
    prefill_tokens: int = 0
    cached_tokens: int = 0  # prompt tokens whose KV came from the prefix cache


@dataclass(frozen=True)
class JobResult:
    """What the engine returns for a job; errors travel as values, not exceptions."""

    canvases: tuple[Canvas, ...] = ()
    timings: Timings = field(default_factory=Timings)
    finish_reason: FinishReason = FinishReason.CONVERGED
    error: str | None = None
    healed: str = ""  # prompt characters each canvas re-creates first (token healing); strip before showing

    @property
    def steps(self) -> int:
        return len(self.timings.step_ms)


def job_problem(job: Job, vocab_size: int, max_positions: int | None = None, max_canvas: int = 1024) -> str | None:
    """Why `job` cannot run on a model of `vocab_size` tokens (and `max_positions` positions), or None."""
    if not job.prompt_ids:
        return "empty prompt"
    if any(not 0 <= t < vocab_size for t in job.prompt_ids):
        return f"prompt token ids must lie in [0, {vocab_size})"
    if not 1 <= job.canvas_length <= max_canvas:
        return f"canvas_length must be between 1 and {max_canvas}"
    if job.max_steps is not None and not 1 <= job.max_steps <= 512:
        return "max_steps must be between 1 and 512"
    if not 1 <= job.alternatives <= 16:
        return "alternatives must be between 1 and 16"
    if not 1 <= job.max_canvases <= 16:
        return "max_canvases must be between 1 and 16"
    if any(not 0 <= p < job.canvas_length or not 0 <= t < vocab_size for p, t in job.pins):
        return "pins must name canvas positions and token ids in range"
    if job.seed_canvas is not None and (
        len(job.seed_canvas) != job.canvas_length or any(not 0 <= t < vocab_size for t in job.seed_canvas)
    ):
        return "seed_canvas must hold canvas_length token ids in range"
    if job.seed is not None and not -(2**63) <= job.seed < 2**64:  # what a torch.Generator takes
        return "seed must be a 64-bit integer (between -2**63 and 2**64 - 1)"
    if max_positions is not None and len(job.prompt_ids) + job.canvas_length * job.max_canvases > max_positions:
        return f"prompt plus canvases exceed the model's {max_positions} positions"
    return None
