# mypy: disable-error-code="no-untyped-def, untyped-decorator"
# (Triton kernel bodies: their parameters are typed by Triton's JIT, not by annotations.)
"""The decoder's attention for a short canvas against a long prompt cache, beside the plain-PyTorch function it
must equal.

`reference_canvas_attention` says what is computed: every canvas query attends to the first `prefix_len[b]` slots
of its row's prompt K/V buffer and to the first `canvas_len` canvas keys (bidirectionally), with grouped-query
heads and no mask tensor. `canvas_attention` reads both sources in place (no concatenation of the prompt K/V with
the canvas each step) in a flash-decoding kernel: the key range is split across programs so that a 64-query canvas
still fills the GPU, each program keeps a running softmax over its keys for all query heads of one K/V head, and
the splits are merged by their log-sum-exp.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class AttentionTiles:
    """Rows (query head x canvas position pairs) and keys per program, keys per split, and launch settings."""

    block_m: int = 64
    block_n: int = 64
    split_keys: int = 512
    num_warps: int = 4
    num_stages: int = 2


def reference_canvas_attention(
    query: torch.Tensor,
    prefix_keys: torch.Tensor,
    prefix_values: torch.Tensor,
    prefix_len: torch.Tensor,
    canvas_keys: torch.Tensor,
    canvas_values: torch.Tensor,
    canvas_len: int,
    scaling: float,
) -> torch.Tensor:
    """query [batch, heads, canvas, dim], prefix_* [batch, kv heads, slots, dim], prefix_len [batch], canvas_*
    [batch, kv heads, canvas, dim] -> [batch, canvas, heads, dim] in query's dtype (softmax in float32)."""
    _, heads, canvas, _ = query.shape
    group = heads // prefix_keys.shape[1]
    keys = torch.cat([prefix_keys, canvas_keys], dim=2).repeat_interleave(group, dim=1).float()
    values = torch.cat([prefix_values, canvas_values], dim=2).repeat_interleave(group, dim=1).float()
    slots = prefix_keys.shape[2]
    position = torch.arange(slots + canvas, device=query.device)
    visible = torch.where(
        position[None] < slots, position[None] < prefix_len[:, None], position[None] - slots < canvas_len
    )  # [batch, slots + canvas]
    scores = (query.float() @ keys.transpose(-1, -2)) * scaling
    scores = scores.masked_fill(~visible[:, None, None, :], float("-inf"))
    out = scores.softmax(dim=-1) @ values  # [batch, heads, canvas, dim]
    return out.transpose(1, 2).to(query.dtype)


def canvas_attention(
    query: torch.Tensor,
    prefix_keys: torch.Tensor,
    prefix_values: torch.Tensor,
    prefix_len: torch.Tensor,
    canvas_keys: torch.Tensor,
    canvas_values: torch.Tensor,
    canvas_len: torch.Tensor,
    scaling: float,
    tiles: AttentionTiles | None = None,
) -> torch.Tensor:
    """What `reference_canvas_attention` computes, in the Triton kernel; `canvas_len` is a one-element int32
    tensor (a device value, so a CUDA graph can replay the call for any canvas length up to its bucket)."""
    tiles = tiles or AttentionTiles()
    batch, heads, canvas, dim = query.shape
    kv_heads, slots = prefix_keys.shape[1], prefix_keys.shape[2]
    group = heads // kv_heads
    rows = group * canvas  # rows of one K/V head: (query head in the group, canvas position)
    splits = -(-(slots + canvas) // tiles.split_keys)
    grid = (batch * kv_heads, -(-rows // tiles.block_m), splits)
    partial = torch.empty(batch * kv_heads, splits, rows, dim, dtype=torch.float32, device=query.device)
    stats = torch.empty(batch * kv_heads, splits, rows, 2, dtype=torch.float32, device=query.device)  # max, sum
    _kernel()[grid](
        query,
        prefix_keys,
        prefix_values,
        prefix_len,
        canvas_keys,
        canvas_values,
        canvas_len,
        partial,
        stats,
        scaling * math.log2(math.e),
        kv_heads,
        group,
        canvas,
        slots,
        splits,
        *query.stride(),
        *prefix_keys.stride(),
        *canvas_keys.stride(),
        DIM=dim,
        BLOCK_M=tiles.block_m,
        BLOCK_N=tiles.block_n,
        SPLIT_KEYS=tiles.split_keys,
        num_warps=tiles.num_warps,
        num_stages=tiles.num_stages,
    )
    # Merge the splits by log-sum-exp (base 2): [batch * kv heads, rows, dim].
    peak = stats[..., 0].amax(dim=1, keepdim=True)
    weight = torch.exp2(stats[..., 0] - peak)  # a split that saw no visible key has max -inf: weight 0
    total = (weight * stats[..., 1]).sum(dim=1)
    merged = (weight[..., None] * partial).sum(dim=1) / total[..., None]
    out = merged.view(batch, kv_heads, group, canvas, dim).reshape(batch, heads, canvas, dim)
    return out.transpose(1, 2).to(query.dtype)


@functools.cache
def _kernel() -> Any:
    """The JIT kernel, defined on first use (Triton reads TRITON_INTERPRET when a kernel is defined)."""
    import triton
    import triton.language as tl

    @triton.jit
    def kernel(
        q_ptr,
        pk_ptr,
        pv_ptr,
        prefix_len_ptr,
        ck_ptr,
        cv_ptr,
        canvas_len_ptr,
        partial_ptr,
        stats_ptr,
        scale_log2,
        kv_heads,
        group,
        canvas,
        slots,
        splits,
        sq_b,
        sq_h,
        sq_c,
        sq_d,
        sp_b,
        sp_h,
        sp_s,
        sp_d,
        sc_b,
        sc_h,
        sc_s,
        sc_d,
        DIM: tl.constexpr,
        BLOCK_M: tl.constexpr,
        BLOCK_N: tl.constexpr,
        SPLIT_KEYS: tl.constexpr,
    ):
        # One program: BLOCK_M rows (query head of the group, canvas position) of one (batch, K/V head) against
        # the keys [split * SPLIT_KEYS, (split + 1) * SPLIT_KEYS) of the virtual sequence prompt slots + canvas.
        bh = tl.program_id(0)
        b = bh // kv_heads
        kvh = bh % kv_heads
        split = tl.program_id(2)
        rows = tl.program_id(1) * BLOCK_M + tl.arange(0, BLOCK_M)
        is_row = rows < group * canvas
        head = kvh * group + rows // canvas
        position = rows % canvas
        d = tl.arange(0, DIM)
        q = tl.load(
            q_ptr + b * sq_b + head[:, None] * sq_h + position[:, None] * sq_c + d[None, :] * sq_d,
            mask=is_row[:, None],
            other=0.0,
        )
        prefix_len = tl.load(prefix_len_ptr + b)
        canvas_len = tl.load(canvas_len_ptr)
        running_max = tl.full((BLOCK_M,), float("-inf"), dtype=tl.float32)
        running_sum = tl.zeros((BLOCK_M,), dtype=tl.float32)
        acc = tl.zeros((BLOCK_M, DIM), dtype=tl.float32)
        pk = pk_ptr + b * sp_b + kvh * sp_h
        pv = pv_ptr + b * sp_b + kvh * sp_h
        ck = ck_ptr + b * sc_b + kvh * sc_h
        cv = cv_ptr + b * sc_b + kvh * sc_h
        for start in range(0, SPLIT_KEYS, BLOCK_N):
            key = split * SPLIT_KEYS + start + tl.arange(0, BLOCK_N)  # in the virtual sequence
            in_prefix = (key < slots) & (key < prefix_len)
            in_canvas = (key >= slots) & (key - slots < canvas_len)
            at = tl.where(key < slots, key, key - slots)
            k = tl.load(pk + at[None, :] * sp_s + d[:, None] * sp_d, mask=in_prefix[None, :], other=0.0)
            k += tl.load(ck + at[None, :] * sc_s + d[:, None] * sc_d, mask=in_canvas[None, :], other=0.0)
            scores = tl.dot(q, k) * scale_log2  # [BLOCK_M, BLOCK_N], log2 units
            visible = in_prefix | in_canvas
            scores = tl.where(visible[None, :], scores, float("-inf"))
            new_max = tl.maximum(running_max, tl.max(scores, axis=1))
            safe_max = tl.where(new_max == float("-inf"), 0.0, new_max)  # no visible key yet: nothing to scale
            p = tl.exp2(scores - safe_max[:, None])
            rescale = tl.exp2(running_max - safe_max)
            v = tl.load(pv + at[:, None] * sp_s + d[None, :] * sp_d, mask=in_prefix[:, None], other=0.0)
            v += tl.load(cv + at[:, None] * sc_s + d[None, :] * sc_d, mask=in_canvas[:, None], other=0.0)
            acc = acc * rescale[:, None] + tl.dot(p.to(v.dtype), v)
            running_sum = running_sum * rescale + tl.sum(p, axis=1)
            running_max = new_max
        out = (bh * splits + split) * (group * canvas) + rows
        tl.store(partial_ptr + out[:, None] * DIM + d[None, :], acc, mask=is_row[:, None])
        tl.store(stats_ptr + out * 2, running_max, mask=is_row)
        tl.store(stats_ptr + out * 2 + 1, running_sum, mask=is_row)

    return kernel
