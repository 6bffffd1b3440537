"""`FusedExperts`: DiffusionGemma's experts module run by the fused Triton MoE kernels (fused_moe.py), with the
tiles of the measured table for each call's token count and torch's grouped matmuls where those measured faster."""

from __future__ import annotations

from collections.abc import Callable

import torch

from .fused_moe import ExpertTensors, fused_moe, gelu_tanh
from .moe_tiles import TileChoice

Activation = Callable[[torch.Tensor], torch.Tensor]


def is_gelu_tanh(act_fn: Activation) -> bool:
    """Whether a model's expert activation is the tanh GELU the kernel computes (checked on sample values)."""
    sample = torch.linspace(-6, 6, 97)
    try:
        return bool(torch.allclose(act_fn(sample), gelu_tanh(sample), atol=1e-6))
    except (RuntimeError, TypeError):
        return False


class FusedExperts(torch.nn.Module):
    """Drop-in for DiffusionGemma's experts module: the same call and maths, run by `fused_moe`. Holds the bf16
    weights as the stock parameters themselves, or fp8 weights with their scales as buffers."""

    gate_up_weight: torch.Tensor  # [experts, 2 * intermediate, hidden]
    gate_up_scale: torch.Tensor | None  # [experts, 2 * intermediate] for fp8
    down_weight: torch.Tensor  # [experts, hidden, intermediate]
    down_scale: torch.Tensor | None  # [experts, hidden] for fp8

    def __init__(
        self,
        gate_up: ExpertTensors,
        down: ExpertTensors,
        tiles: TileChoice | None = None,
        fallback: torch.nn.Module | None = None,
    ) -> None:
        """`tiles`: the tiles for a call of so many tokens, or None to run `fallback` (the grouped matmuls over
        these same tensors) where those measured faster."""
        super().__init__()
        self.tiles = tiles or TileChoice()
        self.fallback = fallback
        self.act_fn: Activation = gelu_tanh  # what the kernel computes, as the stock module names it
        self.num_experts = int(gate_up.weight.shape[0])
        for name, tensors in (("gate_up", gate_up), ("down", down)):
            if isinstance(tensors.weight, torch.nn.Parameter):
                self.register_parameter(f"{name}_weight", tensors.weight)
            else:
                self.register_buffer(f"{name}_weight", tensors.weight)
            self.register_buffer(f"{name}_scale", tensors.scale)

    @property
    def is_fp8(self) -> bool:
        return self.gate_up_scale is not None

    def weights(self) -> tuple[ExpertTensors, ExpertTensors]:
        """The gate/up and down projections as the kernels take them."""
        return ExpertTensors(self.gate_up_weight, self.gate_up_scale), ExpertTensors(self.down_weight, self.down_scale)

    def forward(
        self, hidden_states: torch.Tensor, top_k_index: torch.Tensor, top_k_weights: torch.Tensor
    ) -> torch.Tensor:
        """[tokens, hidden] -> [tokens, hidden]: the routing-weighted sum of each token's top-k experts."""
        tiles = self.tiles.for_tokens(int(hidden_states.shape[0]))
        if tiles is None and self.fallback is not None:
            grouped: torch.Tensor = self.fallback(hidden_states, top_k_index, top_k_weights)
            return grouped
        gate_up, down = self.weights()
        return fused_moe(hidden_states, gate_up, down, top_k_index, top_k_weights, tiles)
