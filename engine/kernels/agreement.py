"""How close a fast path's logits stay to the stock model's: the check every kernel and weight format is held to."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from .grouped_moe import install_fp8_linears, install_grouped_experts, probe_kernels


@dataclass(frozen=True)
class LogitsAgreement:
    """How far one set of logits is from a reference: absolute differences and argmax agreement."""

    max_abs_diff: float
    mean_abs_diff: float
    top1_agreement: float  # fraction of positions whose argmax token is the same


def logits_agreement(reference: torch.Tensor, other: torch.Tensor) -> LogitsAgreement:
    """Compare [..., vocab] logits with a reference of the same shape."""
    diff = (other.float() - reference.float()).abs()
    same = other.argmax(dim=-1) == reference.argmax(dim=-1)
    return LogitsAgreement(
        max_abs_diff=float(diff.max()), mean_abs_diff=float(diff.mean()), top1_agreement=float(same.float().mean())
    )


def fp8_agreement(
    model: Any, forward: Callable[[], torch.Tensor], dense: bool = True, triton: bool = False
) -> LogitsAgreement:
    """Logits of `forward()` on the model as it is, then after converting its weights to fp8 in place (experts,
    and the dense linears when `dense`), compared. The conversion stays: the model is fp8 afterwards. `triton`:
    the experts run the fused Triton kernels where they pass their probe, as the engine's default does."""
    reference = forward().detach().float().clone()
    kernels = probe_kernels(model.device, model.dtype)
    install_grouped_experts(model, fp8=True, kernels=kernels, triton=triton)
    if dense:
        install_fp8_linears(model, kernels=kernels)
    return logits_agreement(reference, forward())
