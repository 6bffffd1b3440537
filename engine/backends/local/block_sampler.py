"""One job's canvas block between denoising steps: its rows' canvas, argmax, self-conditioning logits and stop
state, and the sampler update that turns a step's logits into the next canvas.

Used by the denoising loop (denoise.py) for every job of a batch, so a job samples the same way, with
the same order of random draws from its own generator, whether it runs alone or beside other jobs. No forwards here.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ...job import FinishReason, Job
from .sampler import (
    SamplerParams,
    StabilityTracker,
    accepted_mask,
    random_canvas,
    temperature,
    token_entropy,
)


@dataclass
class Block:
    """What denoising one canvas gave: [batch, canvas] tokens, confidences and entropies, steps per row, why it
    ended."""

    tokens: torch.Tensor
    confidence: torch.Tensor
    steps: torch.Tensor
    reason: FinishReason
    entropy: torch.Tensor  # [batch, canvas] of each position's distribution at the last step


def pin_tensors(job: Job, batch: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor] | None:
    """([batch, canvas] bool mask, [batch, canvas] token ids) for the job's pins, or None."""
    if not job.pins:
        return None
    mask = torch.zeros(batch, job.canvas_length, dtype=torch.bool, device=device)
    values = torch.zeros(batch, job.canvas_length, dtype=torch.long, device=device)
    for position, token in job.pins:
        mask[:, position] = True
        values[:, position] = token
    return mask, values


def last_step_stats(logits: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each position's probability of its token and its distribution's entropy (nats), from one softmax pass.
    [batch, canvas, vocab], [batch, canvas] -> [batch, canvas], [batch, canvas]"""
    log_probs = torch.log_softmax(logits.float(), dim=-1).clamp_(min=torch.finfo(torch.float32).min)
    probs = log_probs.exp()
    return probs.gather(-1, tokens[..., None]).squeeze(-1), (probs * log_probs).sum(-1).neg_()


class BlockSampler:
    """The sampler state of one job's block (`job.alternatives` rows); `update` consumes one step's logits."""

    def __init__(
        self,
        job: Job,
        params: SamplerParams,
        vocab_size: int,
        is_first: bool,
        max_steps: int,
        generator: torch.Generator,
        embed_dtype: torch.dtype,
        device: torch.device,
    ) -> None:
        self.params = params
        self.vocab_size = vocab_size
        self.max_steps = max_steps
        self.steps_left = max_steps
        self.generator = generator
        self.embed_dtype = embed_dtype
        self.device = device
        self.batch, self.length = job.alternatives, job.canvas_length
        canvas = random_canvas(self.batch, self.length, vocab_size, device, generator)
        if is_first and job.seed_canvas is not None:
            canvas = torch.tensor([job.seed_canvas], dtype=torch.long, device=device).repeat(self.batch, 1)
        self.pins = pin_tensors(job, self.batch, device) if is_first else None
        if self.pins is not None:
            canvas = torch.where(self.pins[0], self.pins[1], canvas)
        self.canvas = canvas  # [batch, canvas] the next step's input
        self.argmax = canvas  # [batch, canvas] the latest draft
        self.sc_logits: torch.Tensor | None = None  # [batch, canvas, vocab] the last step's logits
        self.done = torch.zeros(self.batch, dtype=torch.bool, device=device)
        self.steps = torch.zeros(self.batch, dtype=torch.int32, device=device)
        self.tracker = StabilityTracker(params)

    @property
    def step_index(self) -> int:
        """Steps taken so far."""
        return self.max_steps - self.steps_left

    def interruption(
        self, is_cancelled: Callable[[], bool] | None, deadline: float | None, has_stepped: bool
    ) -> FinishReason | None:
        """Why the block must stop before its next step (cancelled, out of time), or None."""
        if is_cancelled is not None and is_cancelled():
            return FinishReason.CANCELLED
        if deadline is not None and has_stepped and time.perf_counter() >= deadline:
            return FinishReason.DEADLINE
        return None

    def update(self, logits: torch.Tensor) -> bool:
        """Sample the next canvas from one step's [batch, canvas, vocab] logits; True once the block is over
        (every row stable and confident, or no steps left)."""
        params, batch, length = self.params, self.batch, self.length
        canvas, argmax, sc_logits, done = self.canvas, self.argmax, self.sc_logits, self.done
        self.steps += (~done).int()
        logits = logits / temperature(params, self.steps_left, self.max_steps)  # [batch, canvas, vocab]
        probs = torch.softmax(logits, dim=-1, dtype=torch.float32)
        sampled = torch.multinomial(probs.view(-1, self.vocab_size), 1, generator=self.generator).view(batch, length)
        new_argmax = torch.argmax(logits, dim=-1)
        entropy = token_entropy(logits)  # [batch, canvas]
        accept = accepted_mask(entropy, params.entropy_bound)
        new_canvas = torch.where(accept, sampled, canvas)
        noise = random_canvas(batch, length, self.vocab_size, self.device, self.generator)
        new_canvas = torch.where(~accept, noise, new_canvas)
        if self.pins is not None:
            new_canvas = torch.where(self.pins[0], self.pins[1], new_canvas)
            new_argmax = torch.where(self.pins[0], self.pins[1], new_argmax)
        if bool(done.any()):  # rows that stopped keep their last state
            new_argmax = torch.where(done[:, None], argmax, new_argmax)
            new_canvas = torch.where(done[:, None], canvas, new_canvas)
            logits = torch.where(done[:, None, None], sc_logits, logits)  # type: ignore[arg-type]
            entropy = token_entropy(logits)
        self.done = done | self.tracker.update(new_argmax, entropy)
        self.canvas, self.argmax = new_canvas, new_argmax
        self.sc_logits = logits.to(self.embed_dtype)
        self.steps_left -= 1
        return self.is_converged or self.steps_left == 0

    @property
    def is_converged(self) -> bool:
        return bool(self.done.all())

    def block(self, reason: FinishReason) -> Block:
        """The block as it stands: the latest draft, each token's probability and its distribution's entropy at
        the last step."""
        if self.sc_logits is None:
            confidence = torch.zeros(self.batch, self.length, device=self.device)
            entropy = torch.full((self.batch, self.length), math.log(self.vocab_size), device=self.device)
        else:
            confidence, entropy = last_step_stats(self.sc_logits, self.argmax)
        return Block(tokens=self.argmax, confidence=confidence, steps=self.steps, reason=reason, entropy=entropy)
