"""DiffusionGemma's sampler as pure tensor maths: temperature schedule, entropy-bound acceptance, renoising,
and the stable-and-confident stop. Mirrors transformers' `generation_diffusion_gemma` step for step, including
the order in which random numbers are drawn, so that seeded runs give the same tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class SamplerParams:
    """The sampler constants a checkpoint ships in its generation_config.json."""

    max_denoising_steps: int = 48
    entropy_bound: float = 0.1
    t_min: float = 0.4
    t_max: float = 0.8
    stability_threshold: int = 1
    confidence_threshold: float = 0.005
    eos_token_ids: tuple[int, ...] = (1,)
    pad_token_id: int = 0

    @classmethod
    def from_generation_config(cls, config: Any) -> SamplerParams:
        """Read the constants from a `DiffusionGemmaGenerationConfig` (missing keys keep the defaults)."""
        defaults = cls()
        sampler_config = getattr(config, "sampler_config", None)
        if isinstance(sampler_config, dict):
            entropy_bound = sampler_config.get("entropy_bound", defaults.entropy_bound)
        else:
            entropy_bound = getattr(sampler_config, "entropy_bound", defaults.entropy_bound)
        eos = getattr(config, "eos_token_id", None)
        if eos is None:
            eos_ids = defaults.eos_token_ids
        else:
            eos_ids = tuple(eos) if isinstance(eos, list | tuple) else (int(eos),)
        pad = getattr(config, "pad_token_id", None)

        def value(name: str) -> Any:
            found = getattr(config, name, None)
            return getattr(defaults, name) if found is None else found

        return cls(
            max_denoising_steps=int(value("max_denoising_steps")),
            entropy_bound=float(entropy_bound),
            t_min=float(value("t_min")),
            t_max=float(value("t_max")),
            stability_threshold=int(value("stability_threshold")),
            confidence_threshold=float(value("confidence_threshold")),
            eos_token_ids=eos_ids,
            pad_token_id=defaults.pad_token_id if pad is None else int(pad),
        )


def temperature(params: SamplerParams, steps_left: int, max_steps: int) -> float:
    """Linear schedule: t_max at the first step, falling towards t_min (steps_left counts N..1)."""
    return params.t_min + (params.t_max - params.t_min) * (steps_left / max_steps)


def token_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of each position's distribution. [batch, canvas, vocab] -> [batch, canvas]"""
    # `Categorical(logits=logits).entropy()` (what transformers' sampler calls) op for op, so bit-identical, minus
    # the distribution's argument check (a full pass over the logits and a sync every step) and two temporaries.
    normalized = logits - logits.logsumexp(dim=-1, keepdim=True)
    probs = torch.softmax(normalized, dim=-1)
    return normalized.clamp_(min=torch.finfo(normalized.dtype).min).mul_(probs).sum(-1).neg_()


def accepted_mask(entropy: torch.Tensor, entropy_bound: float) -> torch.Tensor:
    """Accept the k lowest-entropy tokens with sum - max <= bound (a bound on their joint mutual information)."""
    sorted_entropy, order = torch.sort(entropy, dim=-1, descending=False)
    selection = torch.cumsum(sorted_entropy, dim=-1) - sorted_entropy <= entropy_bound
    return torch.scatter(torch.zeros_like(selection), dim=-1, index=order, src=selection)


def random_canvas(
    batch: int, length: int, vocab_size: int, device: torch.device, generator: torch.Generator | None
) -> torch.Tensor:
    """A canvas of uniform-random tokens, the sampler's noise. [batch, length]"""
    return torch.randint(0, vocab_size, (batch, length), device=device, generator=generator)


class StabilityTracker:
    """The stable-and-confident stop: argmax unchanged for `threshold` steps and mean entropy below a bound."""

    def __init__(self, params: SamplerParams) -> None:
        self.threshold = params.stability_threshold
        self.confidence_threshold = params.confidence_threshold
        self.history: torch.Tensor | None = None  # [threshold, batch, canvas]

    def update(self, argmax_canvas: torch.Tensor, entropy: torch.Tensor) -> torch.Tensor:
        """Record this step's argmax canvas; return which rows may stop. [batch] bool"""
        if self.threshold == 0:
            stable = torch.ones(argmax_canvas.shape[0], dtype=torch.bool, device=argmax_canvas.device)
        else:
            if self.history is None:
                self.history = torch.full(
                    (self.threshold, *argmax_canvas.shape), -1, dtype=argmax_canvas.dtype, device=argmax_canvas.device
                )
            stable = (self.history == argmax_canvas[None]).all(dim=-1).all(dim=0)
            self.history = torch.roll(self.history, shifts=-1, dims=0)
            self.history[-1] = argmax_canvas
        confident = entropy.mean(dim=-1) < self.confidence_threshold
        return stable & confident
