"""The denoising loop: encode the prompt once, then denoise canvases against that KV cache.

Follows transformers' `DiffusionGemmaGenerationMixin.generate` (same maths, same order of random draws) and adds
what completion needs: per-job canvas length and step cap, alternatives in one batch, pinned positions, a seed
canvas, a wall-clock budget, cancellation and drafts between steps, per-token confidence and timings.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from .block_sampler import Block, BlockSampler
from .cuda_graphs import PAD_TOKEN, DecoderStep, StepGraphs
from .hf_internals import output_cache, with_cache
from .job import Canvas, FinishReason, Job, JobResult, Timings
from .prefix_cache import PrefixCache, empty_cache, row_of, snapshot, start_recording, stop_recording
from .sampler import SamplerParams

DraftCallback = Callable[[int, list[list[int]]], None]  # (step, argmax canvas per alternative)
ResultCallback = Callable[[JobResult], None]


@dataclass
class StepControl:
    """How the caller steers a running job between steps."""

    is_cancelled: Callable[[], bool] | None = None
    on_draft: DraftCallback | None = None
    # In a batch, called with the job's result as soon as the job is done, while the others may still run; the
    # batch still returns every result at its end.
    on_result: ResultCallback | None = None


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
        self.graphs = graphs
        self.prefill_together = prefill_together  # batched jobs encode their unknown prompts in one pass
        self.vocab_size = int(model.config.text_config.vocab_size)
        self.device = model.device
        self.embed_dtype = model.model.decoder.embed_tokens.weight.dtype

    @torch.inference_mode()
    def run(self, job: Job, control: StepControl | None = None, decode: Callable[[list[int]], str] = str) -> JobResult:
        """Denoise the job's canvases and return tokens, text, confidence and timings."""
        control = control or StepControl()
        start = time.perf_counter()
        deadline = None if job.time_budget_s is None else start + job.time_budget_s
        generator = torch.Generator(device=self.device)
        generator.manual_seed(job.seed if job.seed is not None else secrets.randbits(63))
        batch = job.alternatives
        max_steps = job.max_steps or self.params.max_denoising_steps

        cache, cached = self._prefill(job.prompt_ids, batch)
        prefill_ms = (time.perf_counter() - start) * 1000
        cur_len = len(job.prompt_ids)

        step_ms: list[float] = []
        blocks: list[Block] = []
        finished = torch.zeros(batch, dtype=torch.bool, device=self.device)
        reason = FinishReason.CONVERGED
        for index in range(job.max_canvases):
            block = self._denoise_block(
                job, cache, cur_len, index == 0, max_steps, generator, deadline, control, step_ms
            )
            blocks.append(block)
            reason = block.reason
            if reason in (FinishReason.CANCELLED, FinishReason.DEADLINE):
                break
            finished |= torch.isin(block.tokens, torch.tensor(self.params.eos_token_ids, device=self.device)).any(-1)
            if index + 1 == job.max_canvases or bool(finished.all()):
                break
            cache = self._encode(block.tokens, cache, cur_len)  # commit the argmax canvas
            cur_len += job.canvas_length

        timings = Timings(
            prefill_ms=prefill_ms,
            step_ms=tuple(step_ms),
            total_ms=(time.perf_counter() - start) * 1000,
            prefill_tokens=len(job.prompt_ids) - cached,
            cached_tokens=cached,
        )
        if reason is FinishReason.CANCELLED:
            return JobResult(timings=timings, finish_reason=reason)
        return JobResult(canvases=self._canvases(blocks, reason, decode), timings=timings, finish_reason=reason)

    def _prefill(self, prompt_ids: tuple[int, ...], batch: int) -> tuple[Any, int]:
        """Encode the prompt once (reusing a cached prefix where one matches) and share it across the batch;
        returns the cache and how many prompt tokens came from the prefix cache."""
        prefix_cache = self.prefix_cache
        cache: Any
        cache, cached = (None, 0) if prefix_cache is None else prefix_cache.lookup(prompt_ids)
        split = cached if prefix_cache is None else prefix_cache.snapshot_length(len(prompt_ids), cached)
        if len(prompt_ids) > cached:
            # One encoder pass for all new tokens (each eager pass costs ~100 ms of launches on the full model):
            # the snapshot behind the end is cut from the states that pass recorded.
            if split > cached:
                cache = cache if cache is not None else empty_cache(self.model.config.get_text_config())
                start_recording(cache)
            cache = self._encode(self._ids(prompt_ids[cached:]), cache, cached)
            if prefix_cache is not None and split > cached:
                prefix_cache.store(prompt_ids[:split], snapshot(cache, len(prompt_ids) - split))
                stop_recording(cache)
        if batch > 1:
            cache.batch_repeat_interleave(batch)
        return cache, cached

    def _prefill_together(self, prompts: list[tuple[int, ...]]) -> list[Any]:
        """Encode several prompts in one pass and return each one's cache as `_prefill` would make it alone from
        nothing (storing its prefix snapshot too). Rows are padded at the end: causal attention never lets a token
        see the padding after it, and each row keeps only its own tokens."""
        longest = max(len(prompt) for prompt in prompts)
        ids = torch.full((len(prompts), longest), PAD_TOKEN, dtype=torch.long)  # any id: no real token sees it
        for row, prompt in enumerate(prompts):
            ids[row, : len(prompt)] = torch.tensor(prompt, dtype=torch.long)
        positions = torch.arange(longest, dtype=torch.int32, device=self.device)[None].expand(len(prompts), -1)
        together = empty_cache(self.model.config.get_text_config())
        start_recording(together)  # sliding layers keep every state, so that each row can cut its own window
        self.model.model.encoder(
            input_ids=ids.to(self.device), position_ids=positions, use_cache=True, **with_cache(together)
        )
        caches = []
        for row, prompt in enumerate(prompts):
            cache = row_of(together, row, len(prompt))
            if self.prefix_cache is not None:
                split = self.prefix_cache.snapshot_length(len(prompt), 0)
                if split > 0:
                    self.prefix_cache.store(prompt[:split], snapshot(cache, len(prompt) - split))
            stop_recording(cache)
            caches.append(cache)
        return caches

    def _ids(self, token_ids: tuple[int, ...]) -> torch.Tensor:
        return torch.tensor([token_ids], dtype=torch.long, device=self.device)

    def _encode(self, input_ids: torch.Tensor, cache: Any, start: int) -> Any:
        """Run the causal encoder over `input_ids` at positions start.., writing the KV cache."""
        positions = torch.arange(start, start + input_ids.shape[1], dtype=torch.int32, device=self.device)[None]
        out = self.model.model.encoder(input_ids=input_ids, position_ids=positions, use_cache=True, **with_cache(cache))
        return output_cache(out)

    def _denoise_block(
        self,
        job: Job,
        cache: Any,
        cur_len: int,
        is_first: bool,
        max_steps: int,
        generator: torch.Generator,
        deadline: float | None,
        control: StepControl,
        step_ms: list[float],
    ) -> Block:
        """Denoise one canvas for every row of the batch (the inner loop of `generate`)."""
        sampler = BlockSampler(
            job, self.params, self.vocab_size, is_first, max_steps, generator, self.embed_dtype, self.device
        )
        positions = torch.arange(cur_len, cur_len + job.canvas_length, dtype=torch.int32, device=self.device)[None]
        forward = self.decoder_step(cache, positions, job.alternatives)
        reason = FinishReason.STEP_CAP
        while sampler.steps_left > 0:
            stop = sampler.interruption(control.is_cancelled, deadline, bool(step_ms))
            if stop is not None:
                reason = stop
                break
            step_start = time.perf_counter()
            sampler.update(forward(sampler.canvas, sampler.sc_logits))
            step_ms.append((time.perf_counter() - step_start) * 1000)
            if control.on_draft is not None:
                control.on_draft(sampler.step_index, sampler.argmax.tolist())
            if sampler.is_converged:
                reason = FinishReason.CONVERGED
                break
        return sampler.block(reason)

    def decoder_step(
        self,
        cache: Any,
        positions: torch.Tensor,
        batch: int,
        row_lengths: dict[str, list[int]] | None = None,
        masks: Callable[[], Any] | None = None,
    ) -> DecoderStep:
        """The decoder forward for one block: a replayed CUDA graph where one fits, else the model itself
        (`row_lengths` and `masks`: the per-row prompt lengths and attention masks of a packed batch)."""
        graphed = None if self.graphs is None else self.graphs.step_for(cache, positions, batch, row_lengths)
        if graphed is not None:
            return graphed
        attention_mask = masks() if masks is not None else None

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
        self, blocks: list[Block], reason: FinishReason, decode: Callable[[list[int]], str]
    ) -> tuple[Canvas, ...]:
        """Join each row's blocks, cut at the first EOS, and decode."""
        tokens = torch.cat([b.tokens for b in blocks], dim=-1).tolist()
        confidence = torch.cat([b.confidence for b in blocks], dim=-1).tolist()
        steps = sum(b.steps for b in blocks).tolist()  # type: ignore[union-attr]
        eos = set(self.params.eos_token_ids)
        canvases = []
        for row, row_conf, row_steps in zip(tokens, confidence, steps, strict=True):
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
                )
            )
        return tuple(canvases)
