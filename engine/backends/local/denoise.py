"""The denoising loop: the jobs of a batch denoised together, one decoder forward per step for all of them; a
single job is a batch of one.

Follows transformers' `DiffusionGemmaGenerationMixin.generate` (same maths, same order of random draws) and adds
what completion needs: per-job canvas length and step cap, alternatives in one batch, pinned positions, a seed
canvas, a wall-clock budget, cancellation and drafts between steps, per-token confidence and timings. A job alone
denoises against its own KV cache and may run several canvases, committing each to the cache before the next;
several jobs (one canvas each, of one length) denoise against their prompts packed into one cache
(packed_prefix.py). Every job keeps its own generator, pins, step cap, deadline, cancellation and timings, so its
result is the one it would get alone, and reports it as soon as it is done (`StepControl.on_result`). Jobs that
finish early keep their rows in the forward (static shapes) but are no longer sampled.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ...hf_internals import with_cache
from ...job import Canvas, FinishReason, Job, JobResult, Timings
from ...kernels.cuda_graphs import DecoderStep, StepGraphs
from .block_sampler import Block, BlockSampler
from .packed_prefix import PackedPrefix
from .prefill import Prefill
from .prefix_cache import PrefixCache
from .sampler import SamplerParams

DraftCallback = Callable[[int, list[list[int]]], None]  # (step, argmax canvas per alternative)
ResultCallback = Callable[[JobResult], None]
Decode = Callable[[list[int]], str]  # token ids → text


@dataclass
class StepControl:
    """How the caller steers a running job between steps."""

    is_cancelled: Callable[[], bool] | None = None
    on_draft: DraftCallback | None = None
    # Called with the job's result as soon as the job is done, while the others of its batch may still run; the
    # batch still returns every result at its end.
    on_result: ResultCallback | None = None


def can_batch(job: Job) -> bool:
    """Whether `job` can share decoder forwards with other jobs (one canvas; later canvases need re-encoding)."""
    return job.max_canvases == 1


@dataclass
class _Member:
    """One job in the batch: its rows, KV cache, sampler state, and what it has done so far."""

    job: Job
    control: StepControl
    rows: slice
    generator: torch.Generator
    max_steps: int
    deadline: float | None
    cache: Any  # the prompt's (and committed canvases') KV; None once packed with the others
    cur_len: int  # positions the cache holds
    prefill_ms: float
    prefill_tokens: int
    cached_tokens: int
    step_ms: list[float] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)
    sampler: BlockSampler | None = None
    result: JobResult | None = None


class Denoiser:
    """Runs jobs on one loaded `DiffusionGemmaForBlockDiffusion`."""

    def __init__(
        self,
        model: Any,
        params: SamplerParams,
        prefix_cache: PrefixCache | None = None,
        graphs: StepGraphs | None = None,
        prefill_together: bool = False,
    ) -> None:
        self.model = model
        self.params = params
        self.prefix_cache = prefix_cache
        self.prefill = Prefill(model, prefix_cache, prefill_together)
        self.graphs = graphs
        self.vocab_size = int(model.config.text_config.vocab_size)
        self.device = model.device
        self.embed_dtype = model.model.decoder.embed_tokens.weight.dtype

    def run(self, job: Job, control: StepControl | None = None, decode: Decode = str) -> JobResult:
        """Denoise the job's canvases and return tokens, text, confidence and timings."""
        return self.run_batch([job], [control], decode)[0]

    @torch.inference_mode()
    def run_batch(
        self,
        jobs: Sequence[Job],
        controls: Sequence[StepControl | None] | None = None,
        decode: Decode = str,
    ) -> list[JobResult]:
        """Denoise `jobs` together (several: one canvas each, all of one canvas length); results in their order."""
        if len(jobs) > 1 and (any(not can_batch(job) for job in jobs) or len({j.canvas_length for j in jobs}) != 1):
            raise ValueError("batched jobs need one canvas each, all of the same length")
        start = time.perf_counter()
        members = self._members(jobs, controls or [None] * len(jobs), start)
        is_first = True
        while any(m.result is None for m in members):  # one block per round; only a job alone has several
            self._denoise_block(members, self._block_step(members), is_first, start, decode)
            is_first = False
        return [m.result for m in members if m.result is not None]

    def _members(self, jobs: Sequence[Job], controls: Sequence[StepControl | None], start: float) -> list[_Member]:
        """Each job's rows, generator, deadline and prefilled cache."""
        members = []
        row = 0
        for job, control, (cache, cached, prefill_ms) in zip(jobs, controls, self.prefill.all(jobs), strict=True):
            generator = torch.Generator(device=self.device)
            generator.manual_seed(job.seed if job.seed is not None else secrets.randbits(63))
            members.append(
                _Member(
                    job=job,
                    control=control or StepControl(),
                    rows=slice(row, row + job.alternatives),
                    generator=generator,
                    max_steps=job.max_steps or self.params.max_denoising_steps,
                    deadline=None if job.time_budget_s is None else start + job.time_budget_s,
                    cache=cache,
                    cur_len=len(job.prompt_ids),
                    prefill_ms=prefill_ms,
                    prefill_tokens=len(job.prompt_ids) - cached,
                    cached_tokens=cached,
                )
            )
            row += job.alternatives
        return members

    def _block_step(self, members: list[_Member]) -> DecoderStep:
        """The decoder forward for the next block: a job alone attends to its own cache; several jobs to their
        caches packed into one (after which they hold none)."""
        length = members[0].job.canvas_length
        if len(members) == 1:
            member = members[0]
            start = member.cur_len
            positions = torch.arange(start, start + length, dtype=torch.int32, device=self.device)[None]
            return self.decoder_step(member.cache, positions, member.job.alternatives)
        prefix = PackedPrefix.pack([m.cache for m in members], list(self.model.config.text_config.layer_types))
        for member in members:
            member.cache = None
        # [rows, canvas]: each row continues its own prompt
        starts = torch.tensor([m.cur_len for m in members for _ in range(m.job.alternatives)], device=self.device)
        positions = starts[:, None] + torch.arange(length, device=self.device)
        return self.decoder_step(prefix, positions, sum(m.job.alternatives for m in members))

    def _denoise_block(
        self,
        members: list[_Member],
        forward: DecoderStep,
        is_first: bool,
        start: float,
        decode: Decode,
    ) -> None:
        """Denoise one canvas for every row of the batch (the inner loop of `generate`)."""
        for member in members:
            member.sampler = BlockSampler(
                member.job, self.params, self.vocab_size, is_first, member.max_steps, member.generator,
                self.embed_dtype, self.device,
            )
        live = [m for m in members if m.result is None]
        while True:
            for member in list(live):
                sampler = _sampler(member)
                stop = sampler.interruption(member.control.is_cancelled, member.deadline, bool(member.step_ms))
                if stop is not None:
                    live.remove(member)
                    self._end_block(member, stop, start, decode)
            if not live:
                return
            step_start = time.perf_counter()
            logits = forward(*_step_inputs(members))  # [rows, canvas, vocab]
            over = [m for m in live if _sampler(m).update(logits[m.rows])]
            step_ms = (time.perf_counter() - step_start) * 1000
            for member in live:
                member.step_ms.append(step_ms)
                if member.control.on_draft is not None:
                    member.control.on_draft(_sampler(member).step_index, _sampler(member).argmax.tolist())
            for member in over:
                live.remove(member)
                reason = FinishReason.CONVERGED if _sampler(member).is_converged else FinishReason.STEP_CAP
                self._end_block(member, reason, start, decode)

    def _end_block(self, member: _Member, reason: FinishReason, start: float, decode: Decode) -> None:
        """Keep the member's finished block, then commit it to the cache for the next one, or finish the job."""
        if reason is not FinishReason.CANCELLED:
            member.blocks.append(_sampler(member).block(reason))
        if self._needs_another_block(member, reason):
            tokens = member.blocks[-1].tokens
            member.cache = self.prefill.encode(tokens, member.cache, member.cur_len)  # commit the argmax canvas
            member.cur_len += member.job.canvas_length
            return
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
            canvases = self._canvases(member.blocks, reason, decode)
            member.result = JobResult(canvases=canvases, timings=timings, finish_reason=reason)
        if member.control.on_result is not None:
            member.control.on_result(member.result)

    def _needs_another_block(self, member: _Member, reason: FinishReason) -> bool:
        """Whether the job goes on to a further canvas: not stopped, canvases left, and some row without EOS."""
        if reason in (FinishReason.CANCELLED, FinishReason.DEADLINE) or len(member.blocks) >= member.job.max_canvases:
            return False
        eos = torch.tensor(self.params.eos_token_ids, device=self.device)
        finished = torch.stack([torch.isin(b.tokens, eos).any(-1) for b in member.blocks]).any(0)  # [rows]
        return not bool(finished.all())

    def decoder_step(self, cache: Any, positions: torch.Tensor, batch: int) -> DecoderStep:
        """The decoder forward for one block: a replayed CUDA graph where one fits, else the model itself (a
        `PackedPrefix` cache brings its rows' prompt lengths and attention masks)."""
        row_lengths = cache.row_lengths if isinstance(cache, PackedPrefix) else None
        graphed = None if self.graphs is None else self.graphs.step_for(cache, positions, batch, row_lengths)
        if graphed is not None:
            return graphed
        attention_mask = cache.masks(positions.shape[-1]) if isinstance(cache, PackedPrefix) else None

        def eager(canvas: torch.Tensor, sc_logits: torch.Tensor | None) -> torch.Tensor:
            out = self.model(
                decoder_input_ids=canvas,
                self_conditioning_logits=sc_logits,
                decoder_position_ids=positions,
                decoder_attention_mask=attention_mask,
                **with_cache(cache),
            )
            logits: torch.Tensor = out.logits
            return logits

        return eager

    def _canvases(
        self, blocks: list[Block], reason: FinishReason, decode: Decode
    ) -> tuple[Canvas, ...]:
        """Join each row's blocks, cut at the first EOS, and decode."""
        tokens = torch.cat([b.tokens for b in blocks], dim=-1).tolist()
        confidence = torch.cat([b.confidence for b in blocks], dim=-1).tolist()
        entropy = torch.cat([b.entropy for b in blocks], dim=-1).tolist()
        steps = sum(b.steps for b in blocks).tolist()  # type: ignore[union-attr]
        eos = set(self.params.eos_token_ids)
        canvases = []
        for row, row_conf, row_entropy, row_steps in zip(tokens, confidence, entropy, steps, strict=True):
            cut = next((i for i, t in enumerate(row) if t in eos), len(row))
            kept = row[:cut]
            canvases.append(
                Canvas(
                    token_ids=tuple(kept),
                    text=decode(kept),
                    confidence=tuple(row_conf[:cut]),
                    steps=int(row_steps),
                    finish_reason=reason,
                    hit_eos=cut < len(row),
                    entropy=tuple(row_entropy[:cut]),
                )
            )
        return tuple(canvases)


def _sampler(member: _Member) -> BlockSampler:
    assert member.sampler is not None
    return member.sampler


def _step_inputs(members: list[_Member]) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The canvas [rows, canvas] and self-conditioning logits [rows, canvas, vocab] (None before the first step) of
    every row; rows of a job done before its first step get zero logits, which only they see."""
    samplers = [_sampler(m) for m in members]
    if len(samplers) == 1:
        return samplers[0].canvas, samplers[0].sc_logits
    canvas = torch.cat([s.canvas for s in samplers])
    if all(s.sc_logits is None for s in samplers):
        return canvas, None
    parts = [
        s.sc_logits
        if s.sc_logits is not None
        else torch.zeros(s.batch, s.length, s.vocab_size, dtype=s.embed_dtype)
        for s in samplers
    ]
    return canvas, torch.cat([p.to(samplers[0].device) for p in parts])
