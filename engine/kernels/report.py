"""Which kernels a model runs, read from the modules it holds after the engine's options were applied, and why
the faster ones do not run where they do not: one line for the engine's status and `diffusion-copilot doctor`.

Where a GPU lacks a fast path the engine would otherwise reach for (`torch._grouped_mm` outside Hopper and
Blackwell data-centre parts loops over the experts with a host sync), the report says so instead of leaving a slow
path unexplained.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch

from .compiled_layers import LayerForward
from .fp8 import Fp8Linear
from .fused_experts import FusedExperts
from .fused_norm import FusedRMSNorm
from .grouped_moe import ExpertWeights, GroupedExperts, probe_kernels, text_layers
from .moe_tiles import tile_choice
from .quant_moe import QuantExperts, QuantLinear

# GPU generations where torch._grouped_mm and torch._scaled_grouped_mm have their fused kernels (sm_90, sm_100);
# elsewhere they run one matmul per expert after reading the group sizes on the host.
GROUPED_MM_FAST = ((9, 0), (10, 0))


@dataclass(frozen=True)
class KernelReport:
    """What runs, a part at a time, and the notes that explain a slower choice."""

    experts: str
    attention: str
    norms: str
    dense: str
    step: str
    notes: tuple[str, ...] = ()

    def line(self) -> str:
        parts = [
            f"experts: {self.experts}",
            f"attention: {self.attention}",
            f"norms: {self.norms}",
            f"dense: {self.dense}",
            f"step: {self.step}",
        ]
        return "; ".join(parts) + "".join(f" ({note})" for note in self.notes)


def kernel_report(model: Any, graphs: bool) -> KernelReport:
    """Read the kernels off `model` as the engine left it (`graphs`: the step runs from CUDA graphs)."""
    layers = list(text_layers(model))
    experts = _experts(layer.experts for layer in layers)
    forward = layers[0].forward if layers else None
    if isinstance(forward, LayerForward):
        in_place = forward.regions.in_place_attention
        attention = "Triton canvas attention (prompt K/V read in place)" if in_place else "sdpa"
        compiled = " (text layers compiled)" if forward.regions.compiled else ""
    else:
        attention, compiled = str(getattr(model.config, "_attn_implementation", "stock")), ""
    norms = "fused RMSNorm" if any(isinstance(m, FusedRMSNorm) for m in model.modules()) else "stock"
    quantized = {m.format for m in model.modules() if isinstance(m, QuantLinear)}
    fp8 = {"fp8"} if any(isinstance(m, Fp8Linear) for m in model.modules()) else set()
    dense = "+".join(sorted(quantized | fp8)) or str(model.dtype).removeprefix("torch.")
    step = ("CUDA graphs" if graphs else "eager") + compiled
    return KernelReport(experts, attention, norms, dense, step, _notes(model.device, experts))


def _experts(modules: Iterable[Any]) -> str:
    first = next(iter(modules), None)
    if isinstance(first, FusedExperts):
        kind = "fp8" if first.is_fp8 else str(first.gate_up_weight.dtype).removeprefix("torch.")
        grouped = first.tiles.grouped_above()
        above = f"; grouped matmuls above {grouped} tokens" if grouped is not None and first.fallback else ""
        return f"Triton fused MoE ({kind}{above})"
    if isinstance(first, QuantExperts):
        return f"Triton weight-only MoE ({first.format})"
    if isinstance(first, GroupedExperts):
        weight = first.gate_up.weight if isinstance(first.gate_up, ExpertWeights) else None
        return f"grouped matmuls ({'fp8' if weight is None else str(weight.dtype).removeprefix('torch.')})"
    return "stock loop over experts"


def _notes(device: torch.device, experts: str) -> tuple[str, ...]:
    if device.type != "cuda":
        return ("CPU: the GPU kernels are off",)
    notes = []
    capability = torch.cuda.get_device_capability(device)
    if experts.startswith("grouped") and capability not in GROUPED_MM_FAST:
        notes.append(f"sm_{capability[0]}{capability[1]} has no fused grouped matmul: torch loops over experts")
    if not experts.startswith("Triton"):
        notes.append("Triton fused MoE off: turned off, or it failed its probe here (the log says which)")
    return tuple(notes)


def device_plan(device: torch.device | None = None) -> str:
    """What the engine's defaults would run on `device` (the first GPU, else the CPU), before any model loads (each
    kernel probed there on a small problem): the line `diffusion-copilot doctor` prints."""
    device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type != "cuda":
        return "CPU: the stock modules (the fast kernels need an NVIDIA GPU)"
    kernels = probe_kernels(device, torch.bfloat16)
    capability = torch.cuda.get_device_capability(device)
    generation = f"sm_{capability[0]}{capability[1]}"
    grouped_fast = capability in GROUPED_MM_FAST and kernels.grouped_mm
    if kernels.triton_moe:
        choice = tile_choice(capability, "bf16")
        tiles = "measured tiles" if choice.rows else f"default tiles (no measured table for {generation})"
        above = choice.grouped_above()
        grouped = f", grouped matmuls above {above} tokens" if above is not None and grouped_fast else ""
        experts = f"Triton fused MoE ({tiles}{grouped})"
    elif grouped_fast:
        experts = "grouped matmuls (Triton fused MoE failed its probe: the log says why)"
    else:
        experts = f"a loop over experts: Triton failed its probe and {generation} has no fused grouped matmul"
    fp8 = "fp8 weights: Triton" if kernels.triton_moe else f"fp8 weights: {'yes' if kernels.scaled_mm else 'no'}"
    return f"{torch.cuda.get_device_name(device)} ({generation}): experts {experts}; {fp8}"
