"""The fused-MoE tile table: rows by token count, the grouped matmuls where they measured faster, and the same
answer whichever runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from diffusion_copilot.engine.kernels.fused_experts import FusedExperts
from diffusion_copilot.engine.kernels.fused_moe import ExpertTensors, MoeTiles, gelu_tanh, reference_moe
from diffusion_copilot.engine.kernels.grouped_moe import ExpertWeights, GroupedExperts
from diffusion_copilot.engine.kernels.moe_tiles import TABLE, TileChoice, tile_choice

pytest.importorskip("triton")


def test_a_step_gets_the_row_of_the_smallest_measured_size_at_or_above_it(tmp_path: Path):
    small, large = {"block_m": 16, "block_n": 64, "block_k": 128, "num_warps": 4, "num_stages": 4}, "grouped"
    table = tmp_path / "tiles.json"
    table.write_text(json.dumps({"sm_90": {"bf16": [[256, large], [64, small]]}}))
    choice = tile_choice((9, 0), "bf16", table)
    assert choice.for_tokens(1) == choice.for_tokens(64) == MoeTiles(**small)
    assert choice.for_tokens(65) is None and choice.for_tokens(4096) is None  # beyond the table: its last row
    assert tile_choice((12, 0), "bf16", table) == TileChoice()  # a GPU the table does not know: the defaults
    assert tile_choice(None, "bf16", table).for_tokens(64) == MoeTiles()


def test_the_shipped_table_names_real_tiles_for_both_formats():
    table = json.loads(TABLE.read_text())
    for capability, entry in table.items():
        choice = tile_choice((int(capability[3:-1]), int(capability[-1])), "fp8")
        assert {"bf16", "fp8"} <= entry.keys() and choice.rows
        assert all(limit > 0 and (tiles is None or tiles.block_m >= 16) for limit, tiles in choice.rows)


def test_fused_experts_hand_sizes_the_table_marks_grouped_to_the_grouped_matmuls(kernel_device):
    experts, hidden, inter, tokens = 8, 64, 48, 40
    generator = torch.Generator().manual_seed(0)
    gate_up = (torch.randn(experts, 2 * inter, hidden, generator=generator) / 8).to(kernel_device)
    down = (torch.randn(experts, hidden, inter, generator=generator) / 8).to(kernel_device)
    x = torch.randn(tokens, hidden, generator=generator).to(kernel_device)
    weights, index = torch.randn(tokens, experts, generator=generator).softmax(-1).topk(2, dim=-1)
    index, weights = index.to(kernel_device), weights.to(kernel_device)
    want = reference_moe(x, ExpertTensors(gate_up), ExpertTensors(down), index, weights)
    calls: list[int] = []

    class Counted(GroupedExperts):
        def forward(self, *args: torch.Tensor) -> torch.Tensor:
            calls.append(args[0].shape[0])
            return super().forward(*args)

    def parameter(w: torch.Tensor) -> torch.nn.Parameter:
        return torch.nn.Parameter(w, requires_grad=False)

    grouped = Counted(ExpertWeights(parameter(gate_up), False), ExpertWeights(parameter(down), False), gelu_tanh, 8)
    fused = FusedExperts(
        ExpertTensors(gate_up), ExpertTensors(down), TileChoice(((16, MoeTiles()), (64, None))), grouped
    )
    for n in (5, tokens):
        got = fused(x[:n], index[:n], weights[:n])
        torch.testing.assert_close(got, want[:n], atol=1e-3, rtol=1e-3)
    assert calls == [tokens]  # 5 tokens ran the Triton kernels, 40 the grouped matmuls
