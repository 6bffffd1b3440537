"""One-kernel RMSNorm for DiffusionGemma's text layers.

The stock norm upcasts, squares, averages, adds, raises to -0.5, multiplies and casts back: about nine kernels,
and each text layer has eleven norms, so they are a third of the small ops an eager encoder pass spends its launch
time on (and that a captured denoising step still runs one by one). `rms_norm` does the same maths in float32 in
one kernel where torch has a fused one (CUDA). Inference only, like grouped_moe.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..hf_internals import norm_eps

STOCK_NORM = "DiffusionGemmaRMSNorm"


class FusedRMSNorm(nn.Module):
    """Drop-in for the stock text norm: x / rms(x), times the weight where there is one. `rms_norm` computes in
    float32 whatever the input's dtype and rounds once, as the stock norm does (bit-identical on the CPU)."""

    def __init__(self, weight: nn.Parameter | None, eps: float) -> None:
        super().__init__()
        self.weight = weight  # the stock parameter itself, so tied encoder and decoder norms stay tied
        self.eps = eps

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        weight = None if self.weight is None else self.weight.to(hidden_states.dtype)
        return nn.functional.rms_norm(hidden_states, (hidden_states.shape[-1],), weight, self.eps)


def install_fused_norms(model: Any) -> int:
    """Swap every stock norm of the text layers (encoder, decoder and their final norms) for `FusedRMSNorm`;
    returns how many were swapped. Norms elsewhere (the vision tower) keep their own class."""
    made: dict[int, FusedRMSNorm] = {}  # by module identity: a module reached twice gets one replacement
    swaps: list[tuple[nn.Module, str, Any]] = []
    for roots in (model.model.encoder.language_model, model.model.decoder):
        for parent in roots.modules():
            for name, child in parent.named_children():
                if type(child).__name__ == STOCK_NORM:
                    swaps.append((parent, name, child))
    for parent, name, child in swaps:
        if id(child) not in made:
            made[id(child)] = FusedRMSNorm(getattr(child, "weight", None), norm_eps(child))
        setattr(parent, name, made[id(child)])
    return len(made)
