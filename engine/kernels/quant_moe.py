"""Weight-only quantized experts and linears on the Triton kernels of quant_kernels.py (int8, fp8, int4, NVFP4,
dequantized in registers), beside the references they must equal: `reference_moe` of fused_moe.py on the
dequantized weights, and a float32 matmul for the linears.

The MoE path reuses fused_moe's expert-blocked routing, tiles and result layout; per-channel fp8 and int8 experts
can also run fused_moe's own kernel (`QuantExperts` picks by the format's `moe_kernel`). Triton is imported on
first use.
"""

from __future__ import annotations

import functools
from types import ModuleType
from typing import Any

import torch
from torch import nn

from ..weights.formats import Kernel, QuantizedWeight, weight_format
from .fused_moe import ExpertTensors, fused_moe, gelu_tanh, reference_moe
from .moe_routing import blocked_routing
from .moe_tiles import MoeTiles

FORMAT_CODES = {"int8": 0, "fp8": 1, "int4": 2, "nvfp4": 3}


def dense(q: QuantizedWeight, dtype: torch.dtype) -> torch.Tensor:
    """The weight `q` stands for (the format's plain-PyTorch dequantization)."""
    return weight_format(q.format).dequantize(q, dtype)


def reference_quant_moe(
    x: torch.Tensor,
    gate_up: QuantizedWeight,
    down: QuantizedWeight,
    top_k_index: torch.Tensor,
    top_k_weights: torch.Tensor,
) -> torch.Tensor:
    """What `quant_moe` computes: `reference_moe` on the dequantized experts."""
    return reference_moe(
        x,
        ExpertTensors(dense(gate_up, torch.float32)),
        ExpertTensors(dense(down, torch.float32)),
        top_k_index,
        top_k_weights,
    )


def reference_quant_linear(x: torch.Tensor, q: QuantizedWeight) -> torch.Tensor:
    """What `quant_linear` computes: x [..., in] @ dequantized W [out, in]^T in float32, in x's dtype."""
    return (x.float() @ dense(q, torch.float32).T).to(x.dtype)


def _operands(q: QuantizedWeight) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """(weight codes, scale, global scale, group) as the kernels read them: fp8 bytes as uint8, per-channel scales
    with a group of 1 over a zero stride (set by the caller), a dummy global scale outside NVFP4."""
    t = q.tensors
    weight = t["weight_packed"] if "weight_packed" in t else t["weight"]
    if weight.dtype == torch.float8_e4m3fn:
        weight = weight.view(torch.uint8)
    scale = t["weight_scale"]
    if scale.dtype == torch.float8_e4m3fn:
        scale = scale.view(torch.uint8)
    global_scale = t.get("weight_global_scale", scale).reshape(-1)
    group = q.shape[-1] // scale.shape[-1] if weight_format(q.format).group else 1  # int4 groups vary by weight
    return weight, scale, global_scale, group


def _scale_strides(q: QuantizedWeight, scale: torch.Tensor) -> tuple[int, int]:
    """(stride over outputs, stride over input groups); per-channel scales do not move with the input."""
    per_channel = weight_format(q.format).group is None
    return scale.stride(-2), 0 if per_channel else scale.stride(-1)


def quant_linear(x: torch.Tensor, q: QuantizedWeight, tiles: MoeTiles | None = None) -> torch.Tensor:
    """x [..., in] @ W^T for a quantized W [out, in], in one Triton kernel; the result in x's dtype."""
    tiles = tiles or MoeTiles()
    out_features, in_features = q.shape
    rows = x.reshape(-1, in_features).contiguous()
    weight, scale, global_scale, group = _operands(q)
    stride_sn, stride_sk = _scale_strides(q, scale)
    out = torch.empty(rows.shape[0], out_features, dtype=x.dtype, device=x.device)
    grid = (-(-rows.shape[0] // tiles.block_m), -(-out_features // tiles.block_n))
    _kernels().linear_kernel[grid](
        rows,
        weight,
        scale,
        global_scale,
        out,
        rows.shape[0],
        in_features,
        out_features,
        rows.stride(0),
        weight.stride(0),
        weight.stride(1),
        stride_sn,
        stride_sk,
        out.stride(0),
        FORMAT=FORMAT_CODES[q.format],
        GROUP=group,
        BLOCK_M=tiles.block_m,
        BLOCK_N=tiles.block_n,
        BLOCK_K=tiles.block_k,
        num_warps=tiles.num_warps,
        num_stages=tiles.num_stages,
    )
    return out.reshape(*x.shape[:-1], out_features)


def quant_moe(
    x: torch.Tensor,
    gate_up: QuantizedWeight,
    down: QuantizedWeight,
    top_k_index: torch.Tensor,
    top_k_weights: torch.Tensor,
    tiles: MoeTiles | None = None,
) -> torch.Tensor:
    """What `reference_quant_moe` computes, in two Triton kernels over fused_moe's blocked routing. x [tokens,
    hidden], gate_up [experts, 2 * intermediate, hidden], down [experts, hidden, intermediate], top_k_* [tokens, k]."""
    tiles = tiles or MoeTiles()
    tokens, top_k = top_k_index.shape
    num_experts, double_inter, hidden = gate_up.shape
    inter = double_inter // 2
    routing = blocked_routing(top_k_index, num_experts, tiles.block_m)
    kernels = _kernels()
    x = x.contiguous()
    blocks = routing.expert_of_block.numel()
    launch = {
        "BLOCK_M": tiles.block_m,
        "BLOCK_N": tiles.block_n,
        "BLOCK_K": tiles.block_k,
        "num_warps": tiles.num_warps,
        "num_stages": tiles.num_stages,
    }
    activated = torch.empty(routing.pair_of_row.numel(), inter, dtype=x.dtype, device=x.device)  # [rows, inter]
    w, s, g, group = _operands(gate_up)
    kernels.gate_up_kernel[(blocks, -(-inter // tiles.block_n))](
        x,
        w,
        s,
        g,
        activated,
        routing.pair_of_row,
        routing.expert_of_block,
        routing.pairs,
        num_experts,
        hidden,
        inter,
        top_k,
        x.stride(0),
        w.stride(0),
        w.stride(1),
        w.stride(2),
        s.stride(0),
        *_scale_strides(gate_up, s),
        activated.stride(0),
        FORMAT=FORMAT_CODES[gate_up.format],
        GROUP=group,
        **launch,
    )
    per_pair = torch.empty(routing.pairs, hidden, dtype=torch.float32, device=x.device)  # [pairs, hidden]
    weights = top_k_weights.reshape(-1).float().contiguous()
    w, s, g, group = _operands(down)
    kernels.down_kernel[(blocks, -(-hidden // tiles.block_n))](
        activated,
        w,
        s,
        g,
        per_pair,
        routing.pair_of_row,
        routing.expert_of_block,
        routing.pairs,
        num_experts,
        inter,
        hidden,
        activated.stride(0),
        w.stride(0),
        w.stride(1),
        w.stride(2),
        s.stride(0),
        *_scale_strides(down, s),
        per_pair.stride(0),
        weights,
        FORMAT=FORMAT_CODES[down.format],
        GROUP=group,
        **launch,
    )
    return per_pair.view(tokens, top_k, hidden).sum(dim=1).to(x.dtype)


@functools.cache
def _kernels() -> ModuleType:
    from . import quant_kernels

    return quant_kernels


class _Holder(nn.Module):
    """Registers a QuantizedWeight's tensors as buffers `{prefix}_{name}`, so `.to()` and memory reports see them."""

    def _hold(self, prefix: str, q: QuantizedWeight) -> None:
        for name, tensor in q.tensors.items():
            self.register_buffer(f"{prefix}__{name}", tensor)

    def _held(self, prefix: str, fmt: str, shape: tuple[int, ...]) -> QuantizedWeight:
        tensors = {
            name.split("__", 1)[1]: t for name, t in self.named_buffers(recurse=False) if name.startswith(f"{prefix}__")
        }
        return QuantizedWeight(fmt, tensors, shape)


class QuantExperts(_Holder):
    """Drop-in for DiffusionGemma's experts module with weight-only quantized experts: int4 / NVFP4 on quant_moe's
    kernels, fp8 / int8 on fused_moe's on a GPU (per-channel scale after the dot; quant_moe's elsewhere, which
    decodes fp8 from its bits)."""

    def __init__(self, gate_up: QuantizedWeight, down: QuantizedWeight, tiles: MoeTiles | None = None) -> None:
        super().__init__()
        self.format = gate_up.format
        self.tiles = tiles or MoeTiles()
        self.act_fn = gelu_tanh
        self.num_experts = gate_up.shape[0]
        self.shapes = (gate_up.shape, down.shape)
        self._hold("gate_up", gate_up)
        self._hold("down", down)

    @property
    def is_fp8(self) -> bool:
        return self.format == "fp8"

    def weights(self) -> tuple[QuantizedWeight, QuantizedWeight]:
        return self._held("gate_up", self.format, self.shapes[0]), self._held("down", self.format, self.shapes[1])

    def forward(
        self, hidden_states: torch.Tensor, top_k_index: torch.Tensor, top_k_weights: torch.Tensor
    ) -> torch.Tensor:
        """[tokens, hidden] -> [tokens, hidden]: the routing-weighted sum of each token's top-k experts."""
        gate_up, down = self.weights()
        if weight_format(self.format).moe_kernel is Kernel.FUSED_MOE and hidden_states.is_cuda:
            return fused_moe(hidden_states, _channel(gate_up), _channel(down), top_k_index, top_k_weights, self.tiles)
        return quant_moe(hidden_states, gate_up, down, top_k_index, top_k_weights, self.tiles)


def _channel(q: QuantizedWeight) -> ExpertTensors:
    """A per-channel format's tensors as fused_moe takes them: scale [experts, out]."""
    return ExpertTensors(q.tensors["weight"], q.tensors["weight_scale"][..., 0].float())


class QuantLinear(_Holder):
    """Drop-in for a bias-free `nn.Linear` with a weight-only quantized weight, run by `quant_linear`."""

    def __init__(self, weight: QuantizedWeight, tiles: MoeTiles | None = None) -> None:
        super().__init__()
        self.format = weight.format
        self.out_features, self.in_features = weight.shape
        self.tiles = tiles or MoeTiles()
        self._hold("weight", weight)

    def quantized(self) -> QuantizedWeight:
        return self._held("weight", self.format, (self.out_features, self.in_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return quant_linear(x, self.quantized(), self.tiles)


def is_quantized_module(module: Any) -> bool:
    return isinstance(module, QuantExperts | QuantLinear)
