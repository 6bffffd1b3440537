"""Cross-request batching: several one-canvas jobs with different prompts denoised together, one decoder forward
per step for all of them.

Each prompt extends its cached prefix alone; with `Denoiser.prefill_together` (a GPU's default) the prompts the
prefix cache knows nothing of are encoded together in one encoder pass. The prompt KVs are then packed,
left-aligned, into one zero-padded cache, and per-row masks hide each row's padding. Every job keeps its own
generator, pins, step cap, deadline, cancellation and timings, so its result is the one it would get alone, and
reports it as soon as it is done (`StepControl.on_result`). Jobs that finish early keep their rows in the forward
(static shapes) but are no longer sampled. Multi-canvas jobs are not batched.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .block_sampler import BlockSampler
from .cuda_graphs import DecoderStep
from .denoise import Denoiser, StepControl
from .job import FinishReason, Job, JobResult, Timings

log = logging.getLogger(__name__)


class _PackedLayer:
    """One layer's prompt K/V of every row, [rows, kv heads, longest prompt, head dim], zero past each row's end,
    and each row's token count (`lengths`, int32 [rows])."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, lengths: torch.Tensor) -> None:
        self.keys = keys
        self.values = values
        self.lengths = lengths


class PackedPrefix:
    """The prompt KV of several prompts as one read-only decoder cache (`layers[i].keys`, `.values`), with each
    row's cached-token count per layer kind; the decoder concatenates it with the canvas and never writes."""

    is_compileable = False

    def __init__(self, layers: list[_PackedLayer], row_lengths: dict[str, list[int]]) -> None:
        self.layers = layers
        self.row_lengths = row_lengths

    @classmethod
    def pack(cls, caches: Sequence[Any], layer_kinds: Sequence[str]) -> PackedPrefix:
        """Stack the rows of `caches` (each [rows_i, heads, length_i, dim] per layer), left-aligned."""
        layers = []
        row_lengths: dict[str, list[int]] = {}
        counts: dict[str, torch.Tensor] = {}  # row_lengths on the device, one tensor per kind
        for index, kind in enumerate(layer_kinds):
            sources = [cache.layers[index] for cache in caches]
            rows = sum(source.keys.shape[0] for source in sources)
            longest = max(source.keys.shape[-2] for source in sources)
            _, heads, _, dim = sources[0].keys.shape
            keys = sources[0].keys.new_zeros(rows, heads, longest, dim)
            values = torch.zeros_like(keys)
            lengths: list[int] = []
            row = 0
            for source in sources:
                count, _, length, _ = source.keys.shape
                keys[row : row + count, :, :length].copy_(source.keys)
                values[row : row + count, :, :length].copy_(source.values)
                lengths += [length] * count
                row += count
            known = row_lengths.setdefault(kind, lengths)
            if known != lengths:
                raise ValueError(f"layers of kind {kind} hold different token counts")
            if kind not in counts:
                counts[kind] = torch.tensor(lengths, dtype=torch.int32, device=keys.device)
            layers.append(_PackedLayer(keys, values, counts[kind]))
        return cls(layers, row_lengths)

    def masks(self, canvas_length: int) -> dict[str, torch.Tensor]:
        """Per layer kind, [rows, 1, canvas, longest prompt + canvas] bool: True where a canvas query may attend."""
        masks = {}
        for kind, lengths in self.row_lengths.items():
            slots = max(lengths)
            device = self.layers[0].keys.device
            mask = torch.zeros(len(lengths), 1, canvas_length, slots + canvas_length, dtype=torch.bool, device=device)
            for row, length in enumerate(lengths):
                mask[row, ..., :length] = True
            mask[..., slots:] = True
            masks[kind] = mask
        return masks


@dataclass
class _Member:
    """One job in the batch: its rows, sampler state, and what it has done so far."""

    job: Job
    control: StepControl
    rows: slice
    sampler: BlockSampler
    deadline: float | None
    prefill_ms: float
    prefill_tokens: int
    cached_tokens: int
    step_ms: list[float]
    result: JobResult | None = None


def can_batch(job: Job) -> bool:
    """Whether `job` can share decoder forwards with other jobs (one canvas; later canvases need re-encoding)."""
    return job.max_canvases == 1


@torch.inference_mode()
def run_batch(
    denoiser: Denoiser,
    jobs: Sequence[Job],
    controls: Sequence[StepControl | None] | None = None,
    decode: Callable[[list[int]], str] = str,
) -> list[JobResult]:
    """Denoise `jobs` (one canvas each, all of the same canvas length) together; results in the jobs' order."""
    if not jobs:
        return []
    if any(not can_batch(job) for job in jobs) or len({job.canvas_length for job in jobs}) != 1:
        raise ValueError("batched jobs need one canvas each, all of the same length")
    controls = list(controls) if controls is not None else [None] * len(jobs)
    start = time.perf_counter()
    members: list[_Member] = []
    prefills = _prefill_all(denoiser, jobs)
    caches = [cache for cache, _, _ in prefills]
    row = 0
    for job, control, (_, cached, prefill_ms) in zip(jobs, controls, prefills, strict=True):
        generator = torch.Generator(device=denoiser.device)
        generator.manual_seed(job.seed if job.seed is not None else secrets.randbits(63))
        max_steps = job.max_steps or denoiser.params.max_denoising_steps
        sampler = BlockSampler(
            job, denoiser.params, denoiser.vocab_size, True, max_steps, generator, denoiser.embed_dtype, denoiser.device
        )
        members.append(
            _Member(
                job=job,
                control=control or StepControl(),
                rows=slice(row, row + job.alternatives),
                sampler=sampler,
                deadline=None if job.time_budget_s is None else start + job.time_budget_s,
                prefill_ms=prefill_ms,
                prefill_tokens=len(job.prompt_ids) - cached,
                cached_tokens=cached,
                step_ms=[],
            )
        )
        row += job.alternatives
    layer_kinds = list(denoiser.model.config.text_config.layer_types)
    prefix = PackedPrefix.pack(caches, layer_kinds)
    del caches
    length = jobs[0].canvas_length
    positions = torch.cat(
        [
            torch.arange(len(m.job.prompt_ids), len(m.job.prompt_ids) + length, device=denoiser.device)
            .long()[None]
            .expand(m.job.alternatives, length)
            for m in members
        ]
    )  # [rows, canvas]: each row continues its own prompt
    forward = _batched_step(denoiser, prefix, positions, row)

    def finish(member: _Member, reason: FinishReason) -> None:
        timings = Timings(
            prefill_ms=member.prefill_ms,
            step_ms=tuple(member.step_ms),
            total_ms=(time.perf_counter() - start) * 1000,
            prefill_tokens=member.prefill_tokens,
            cached_tokens=member.cached_tokens,
        )
        if reason is FinishReason.CANCELLED:
            member.result = JobResult(timings=timings, finish_reason=reason)
        else:
            canvases = denoiser._canvases([member.sampler.block(reason)], reason, decode)
            member.result = JobResult(canvases=canvases, timings=timings, finish_reason=reason)
        if member.control.on_result is not None:
            member.control.on_result(member.result)

    while True:
        for member in members:
            if member.result is None:
                stop = member.sampler.interruption(member.control.is_cancelled, member.deadline, bool(member.step_ms))
                if stop is not None:
                    finish(member, stop)
        active = [m for m in members if m.result is None]
        if not active:
            break
        step_start = time.perf_counter()
        canvas = torch.cat([m.sampler.canvas for m in members])  # [rows, canvas]; finished rows ride along
        sc_logits = _self_conditioning(members)
        logits = forward(canvas, sc_logits)  # [rows, canvas, vocab]
        over = [m for m in active if m.sampler.update(logits[m.rows])]
        step_ms = (time.perf_counter() - step_start) * 1000
        for member in active:
            member.step_ms.append(step_ms)
            if member.control.on_draft is not None:
                member.control.on_draft(member.sampler.step_index, member.sampler.argmax.tolist())
        for member in over:
            finish(member, FinishReason.CONVERGED if member.sampler.is_converged else FinishReason.STEP_CAP)
    return [m.result for m in members if m.result is not None]


def _prefill_all(denoiser: Denoiser, jobs: Sequence[Job]) -> list[tuple[Any, int, float]]:
    """Each job's prompt cache, how many of its tokens came from the prefix cache, and the milliseconds its
    prefill took. Prompts the prefix cache knows nothing of are encoded together in one pass (the weights are read
    and the kernels launched once for all of them); the others extend their cached prefix alone."""
    cache_of = denoiser.prefix_cache
    cold = [i for i, job in enumerate(jobs) if job.prompt_ids and not (cache_of and cache_of.knows(job.prompt_ids))]
    prefills: dict[int, tuple[Any, int, float]] = {}
    if denoiser.prefill_together and len(cold) > 1:
        start = time.perf_counter()
        try:
            caches = denoiser._prefill_together([jobs[i].prompt_ids for i in cold])
        except torch.cuda.OutOfMemoryError:
            log.warning("no memory to encode %d prompts together: encoding them one at a time", len(cold))
            torch.cuda.empty_cache()
        else:
            elapsed_ms = (time.perf_counter() - start) * 1000
            for i, cache in zip(cold, caches, strict=True):
                if jobs[i].alternatives > 1:
                    cache.batch_repeat_interleave(jobs[i].alternatives)
                prefills[i] = (cache, 0, elapsed_ms)
    for i, job in enumerate(jobs):
        if i not in prefills:
            start = time.perf_counter()
            cache, cached = denoiser._prefill(job.prompt_ids, job.alternatives)
            prefills[i] = (cache, cached, (time.perf_counter() - start) * 1000)
    return [prefills[i] for i in range(len(jobs))]


def _self_conditioning(members: list[_Member]) -> torch.Tensor | None:
    """Every row's last logits, or None before the first step (rows of a job stopped before it get zeros,
    which only they see)."""
    if all(m.sampler.sc_logits is None for m in members):
        return None
    parts = []
    for member in members:
        sampler = member.sampler
        if sampler.sc_logits is None:
            parts.append(torch.zeros(sampler.batch, sampler.length, sampler.vocab_size, dtype=sampler.embed_dtype))
        else:
            parts.append(sampler.sc_logits)
    return torch.cat([p.to(members[0].sampler.device) for p in parts])


def _batched_step(denoiser: Denoiser, prefix: PackedPrefix, positions: torch.Tensor, rows: int) -> DecoderStep:
    """The decoder forward for the packed rows, each with its own prompt length and attention mask."""
    return denoiser.decoder_step(prefix, positions, rows, prefix.row_lengths, lambda: prefix.masks(positions.shape[-1]))
