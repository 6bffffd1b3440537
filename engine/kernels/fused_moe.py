# mypy: disable-error-code="no-untyped-def, untyped-decorator"
# (Triton kernel bodies: their parameters are typed by Triton's JIT, not by annotations.)
"""DiffusionGemma's mixture of experts in two Triton kernels, beside the plain-PyTorch function they must equal.

`reference_moe` says what is computed: for each token, the routing-weighted sum over its top-k experts of
down(gelu_tanh(gate(x)) * up(x)). `fused_moe` computes it from an expert-blocked routing (moe_routing): the first
kernel runs gate and up together for a block of one expert's rows and applies the activation, the second runs
down and scales each row by its routing weight; each program streams its expert's weight tile once for all rows
of the block. Weights are bf16/fp16/fp32, or fp8 e4m3 with a float32 scale per output channel (dequantized in
registers). Rows go back to (token, slot) order and are summed there, so results are deterministic (no atomics).

Triton is imported on first use: CPU-only installs never need it, and tests run the kernels on the CPU through
Triton's interpreter (TRITON_INTERPRET=1, float32/float16 only).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import torch

from .moe_routing import BlockedRouting, blocked_routing
from .moe_tiles import MoeTiles


@dataclass(frozen=True)
class ExpertTensors:
    """One projection of all experts: `weight` [experts, out, in], and for fp8 a float32 `scale` [experts, out]."""

    weight: torch.Tensor
    scale: torch.Tensor | None = None

    def dense(self, dtype: torch.dtype) -> torch.Tensor:
        """The weight as `dtype`, scale applied."""
        if self.scale is None:
            return self.weight.to(dtype)
        return (self.weight.float() * self.scale[..., None]).to(dtype)


def gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    """GELU with the tanh approximation (transformers' gelu_pytorch_tanh), in x's dtype."""
    return torch.nn.functional.gelu(x, approximate="tanh")


def reference_moe(
    x: torch.Tensor,
    gate_up: ExpertTensors,
    down: ExpertTensors,
    top_k_index: torch.Tensor,
    top_k_weights: torch.Tensor,
) -> torch.Tensor:
    """[tokens, hidden] -> [tokens, hidden]: sum over k of top_k_weights[t, k] * expert(top_k_index[t, k])(x[t]),
    in float32, one expert at a time; the result in x's dtype."""
    out = torch.zeros(x.shape, dtype=torch.float32, device=x.device)
    w_gate_up, w_down = gate_up.dense(torch.float32), down.dense(torch.float32)
    for expert in sorted(set(top_k_index.reshape(-1).tolist())):
        token, slot = torch.where(top_k_index == expert)
        gate, up = (x[token].float() @ w_gate_up[expert].T).chunk(2, dim=-1)
        y = (gelu_tanh(gate) * up) @ w_down[expert].T
        out.index_add_(0, token, y * top_k_weights[token, slot, None].float())
    return out.to(x.dtype)


def fused_moe(
    x: torch.Tensor,
    gate_up: ExpertTensors,
    down: ExpertTensors,
    top_k_index: torch.Tensor,
    top_k_weights: torch.Tensor,
    tiles: MoeTiles | None = None,
) -> torch.Tensor:
    """What `reference_moe` computes, in the two Triton kernels. x [tokens, hidden], gate_up [experts, 2 *
    intermediate, hidden], down [experts, hidden, intermediate], top_k_* [tokens, top_k]."""
    tiles = tiles or MoeTiles()
    tokens, top_k = top_k_index.shape
    num_experts, double_inter, hidden = gate_up.weight.shape
    inter = double_inter // 2
    routing = blocked_routing(top_k_index, num_experts, tiles.block_m)
    kernels = _kernels()
    x = x.contiguous()
    rows = routing.pair_of_row.numel()
    blocks = routing.expert_of_block.numel()
    activated = torch.empty(rows, inter, dtype=x.dtype, device=x.device)  # [rows, intermediate], by expert
    launch = {"num_warps": tiles.num_warps, "num_stages": tiles.num_stages}
    _launch(
        kernels.gate_up,
        (blocks, -(-inter // tiles.block_n)),
        x,
        gate_up,
        activated,
        routing,
        dims=(hidden, inter, top_k),
        x_row_stride=x.stride(0),
        tiles=tiles,
        launch=launch,
    )
    per_pair = torch.empty(routing.pairs, hidden, dtype=torch.float32, device=x.device)  # [pairs, hidden]
    weights = top_k_weights.reshape(-1).float().contiguous()
    _launch(
        kernels.down,
        (blocks, -(-hidden // tiles.block_n)),
        activated,
        down,
        per_pair,
        routing,
        dims=(inter, hidden, 1),
        x_row_stride=activated.stride(0),
        tiles=tiles,
        launch=launch,
        route_weights=weights,
    )
    return per_pair.view(tokens, top_k, hidden).sum(dim=1).to(x.dtype)


def _launch(
    kernel: Any,
    grid: tuple[int, int],
    x: torch.Tensor,
    weight: ExpertTensors,
    out: torch.Tensor,
    routing: BlockedRouting,
    dims: tuple[int, int, int],
    x_row_stride: int,
    tiles: MoeTiles,
    launch: dict[str, int],
    route_weights: torch.Tensor | None = None,
) -> None:
    """One kernel over the blocked rows: dims = (reduced size, output columns, top_k or 1)."""
    w = weight.weight
    scale = weight.scale if weight.scale is not None else w  # any tensor: unread without HAS_SCALE
    extra = {} if route_weights is None else {"route_weights": route_weights}
    kernel[grid](
        x,
        w,
        scale,
        out,
        routing.pair_of_row,
        routing.expert_of_block,
        routing.pairs,
        routing.num_experts,
        *dims,
        x_row_stride,
        w.stride(0),
        w.stride(1),
        w.stride(2),
        scale.stride(0),
        out.stride(0),
        HAS_SCALE=weight.scale is not None,
        BLOCK_M=tiles.block_m,
        BLOCK_N=tiles.block_n,
        BLOCK_K=tiles.block_k,
        **extra,
        **launch,
    )


@dataclass(frozen=True)
class _Kernels:
    gate_up: Any
    down: Any


@functools.cache
def _kernels() -> _Kernels:
    """The JIT kernels, defined on first use (Triton reads TRITON_INTERPRET when a kernel is defined)."""
    import triton
    import triton.language as tl

    @triton.jit
    def gate_up_kernel(
        x_ptr,
        w_ptr,
        scale_ptr,
        out_ptr,
        pair_of_row_ptr,
        expert_of_block_ptr,
        pairs,
        num_experts,
        hidden,
        inter,
        top_k,
        stride_x,
        stride_we,
        stride_wn,
        stride_wk,
        stride_se,
        stride_out,
        HAS_SCALE: tl.constexpr,
        BLOCK_M: tl.constexpr,
        BLOCK_N: tl.constexpr,
        BLOCK_K: tl.constexpr,
    ):
        # One program: BLOCK_M rows of one expert x BLOCK_N columns of its gate and of its up projection.
        block = tl.program_id(0)
        expert = tl.load(expert_of_block_ptr + block)
        if expert < num_experts:
            rows = block * BLOCK_M + tl.arange(0, BLOCK_M)
            pair = tl.load(pair_of_row_ptr + rows)
            is_row = pair < pairs
            token = pair // top_k
            cols = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
            is_col = cols < inter
            w_gate = w_ptr + expert.to(tl.int64) * stride_we + cols[None, :] * stride_wn
            w_up = w_gate + inter * stride_wn
            gate = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
            up = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
            for k0 in range(0, hidden, BLOCK_K):
                k = k0 + tl.arange(0, BLOCK_K)
                is_k = k < hidden
                a = tl.load(
                    x_ptr + token[:, None] * stride_x + k[None, :], mask=is_row[:, None] & is_k[None, :], other=0.0
                )
                w_mask = is_k[:, None] & is_col[None, :]
                wg = tl.load(w_gate + k[:, None] * stride_wk, mask=w_mask, other=0.0)  # [BLOCK_K, BLOCK_N]
                wu = tl.load(w_up + k[:, None] * stride_wk, mask=w_mask, other=0.0)
                gate += tl.dot(a, wg.to(a.dtype))
                up += tl.dot(a, wu.to(a.dtype))
            if HAS_SCALE:
                scales = scale_ptr + expert.to(tl.int64) * stride_se + cols
                gate *= tl.load(scales, mask=is_col, other=0.0)[None, :]
                up *= tl.load(scales + inter, mask=is_col, other=0.0)[None, :]
            # gelu_tanh(g) = g * sigmoid(2 * sqrt(2 / pi) * (g + 0.044715 g^3)); 2 * sqrt(2 / pi) = 1.5957691216057308
            activated = gate * tl.sigmoid(1.5957691216057308 * (gate + 0.044715 * gate * gate * gate)) * up
            out = out_ptr + rows[:, None] * stride_out + cols[None, :]
            tl.store(out, activated.to(out_ptr.dtype.element_ty), mask=is_row[:, None] & is_col[None, :])

    @triton.jit
    def down_kernel(
        h_ptr,
        w_ptr,
        scale_ptr,
        out_ptr,
        pair_of_row_ptr,
        expert_of_block_ptr,
        pairs,
        num_experts,
        inter,
        hidden,
        unused,
        stride_h,
        stride_we,
        stride_wn,
        stride_wk,
        stride_se,
        stride_out,
        route_weights,
        HAS_SCALE: tl.constexpr,
        BLOCK_M: tl.constexpr,
        BLOCK_N: tl.constexpr,
        BLOCK_K: tl.constexpr,
    ):
        # One program: BLOCK_M rows of one expert x BLOCK_N hidden columns of its down projection, each row scaled
        # by its routing weight and written to its pair's row of the output.
        block = tl.program_id(0)
        expert = tl.load(expert_of_block_ptr + block)
        if expert < num_experts:
            rows = block * BLOCK_M + tl.arange(0, BLOCK_M)
            pair = tl.load(pair_of_row_ptr + rows)
            is_row = pair < pairs
            cols = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
            is_col = cols < hidden
            w = w_ptr + expert.to(tl.int64) * stride_we + cols[None, :] * stride_wn
            acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
            for k0 in range(0, inter, BLOCK_K):
                k = k0 + tl.arange(0, BLOCK_K)
                is_k = k < inter
                a = tl.load(
                    h_ptr + rows[:, None] * stride_h + k[None, :], mask=is_row[:, None] & is_k[None, :], other=0.0
                )
                wd = tl.load(w + k[:, None] * stride_wk, mask=is_k[:, None] & is_col[None, :], other=0.0)
                acc += tl.dot(a, wd.to(a.dtype))
            if HAS_SCALE:
                acc *= tl.load(scale_ptr + expert.to(tl.int64) * stride_se + cols, mask=is_col, other=0.0)[None, :]
            acc *= tl.load(route_weights + pair, mask=is_row, other=0.0)[:, None]
            out = out_ptr + pair[:, None].to(tl.int64) * stride_out + cols[None, :]
            tl.store(out, acc, mask=is_row[:, None] & is_col[None, :])

    return _Kernels(gate_up=gate_up_kernel, down=down_kernel)
