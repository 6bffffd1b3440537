"""Expert-blocked routing for the fused MoE kernels: each token-expert pair gets a row in a block of `block_m` rows
that belong to one expert, found with a per-expert histogram and running counts (no sort).

Shapes depend only on the number of pairs, the experts and `block_m`, never on the routing itself, and nothing
reads device values on the host: the routing can be recorded in a CUDA graph.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class BlockedRouting:
    """Token-expert pairs laid out in blocks of `block_m` rows, one expert per block.

    `pair_of_row` [rows] int32: the flat pair index (token * top_k + slot) in each row, `pairs` for padding rows;
    `expert_of_block` [blocks] int32: each block's expert, `num_experts` for blocks past the last used one.
    """

    pair_of_row: torch.Tensor
    expert_of_block: torch.Tensor
    block_m: int
    pairs: int
    num_experts: int


def max_rows(pairs: int, num_experts: int, block_m: int) -> int:
    """Rows enough for any routing of `pairs` pairs: each expert's rows are padded to a multiple of `block_m`."""
    return -(-(pairs + num_experts * (block_m - 1)) // block_m) * block_m


def blocked_routing(top_k_index: torch.Tensor, num_experts: int, block_m: int) -> BlockedRouting:
    """Lay out the [tokens, top_k] routing by expert, pairs of one expert in their (token, slot) order."""
    expert = top_k_index.reshape(-1).long()  # [pairs]
    pairs = expert.numel()
    device = expert.device
    one_hot = torch.zeros(pairs, num_experts, dtype=torch.int32, device=device)
    one_hot.scatter_(1, expert[:, None], 1)
    running = one_hot.cumsum(0, dtype=torch.int32)  # [pairs, experts]: pairs of each expert so far
    counts = running[-1] if pairs else torch.zeros(num_experts, dtype=torch.int32, device=device)
    padded = (counts + block_m - 1) // block_m * block_m
    ends = padded.cumsum(0, dtype=torch.int32)  # where each expert's rows end
    rank = running.gather(1, expert[:, None]).squeeze(1) - 1  # place of each pair among its expert's
    row = (ends - padded)[expert] + rank
    rows = max_rows(pairs, num_experts, block_m)
    pair_of_row = torch.full((rows,), pairs, dtype=torch.int32, device=device)
    pair_of_row.scatter_(0, row.long(), torch.arange(pairs, dtype=torch.int32, device=device))
    block_starts = torch.arange(0, rows, block_m, dtype=torch.int32, device=device)
    expert_of_block = torch.searchsorted(ends, block_starts, right=True).to(torch.int32)
    return BlockedRouting(pair_of_row, expert_of_block, block_m, pairs, num_experts)


def reference_routing(top_k_index: torch.Tensor, num_experts: int) -> list[list[int]]:
    """What `blocked_routing` must hold, in plain Python: each expert's pairs, in (token, slot) order."""
    flat = top_k_index.reshape(-1).tolist()
    return [[pair for pair, e in enumerate(flat) if e == expert] for expert in range(num_experts)]
