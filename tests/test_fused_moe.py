"""The fused MoE kernels equal their plain-PyTorch reference (on the CPU through Triton's interpreter, which
conftest.py turns on where there is no GPU), and the blocked routing holds each expert's pairs in order."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import DynamicCache

from diffusion_copilot.engine import load_checkpoint
from diffusion_copilot.engine.grouped_moe import Kernels, install_grouped_experts
from diffusion_copilot.engine.hf_internals import with_cache
from diffusion_copilot.engine.kernels.fused_moe import ExpertTensors, FusedExperts, MoeTiles, fused_moe, reference_moe
from diffusion_copilot.engine.kernels.moe_routing import blocked_routing, max_rows, reference_routing

pytest.importorskip("triton")


def _routing(tokens: int, experts: int, top_k: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    scores = torch.randn(tokens, experts, generator=generator)
    scores[:, : experts // 4] -= 4  # some experts get no pairs at all
    weights, index = scores.softmax(-1).topk(top_k, dim=-1)
    return index, weights / weights.sum(-1, keepdim=True)


@pytest.mark.parametrize(("tokens", "experts", "top_k", "block_m"), [(1, 4, 2, 16), (37, 8, 3, 16), (200, 16, 8, 32)])
def test_blocked_routing_holds_each_experts_pairs_in_order(tokens: int, experts: int, top_k: int, block_m: int):
    index, _ = _routing(tokens, experts, top_k, seed=tokens)
    routing = blocked_routing(index, experts, block_m)
    pairs = tokens * top_k
    assert routing.pair_of_row.numel() == max_rows(pairs, experts, block_m)
    got: list[list[int]] = [[] for _ in range(experts)]
    for block, expert in enumerate(routing.expert_of_block.tolist()):
        rows = routing.pair_of_row[block * block_m : (block + 1) * block_m].tolist()
        if expert == experts:
            assert all(row == pairs for row in rows)  # blocks past the last used one hold only padding
            continue
        real = [row for row in rows if row < pairs]
        assert real, "a block of an expert holds at least one pair"
        assert rows[: len(real)] == real  # padding only at the end of a block
        got[expert] += real
    assert got == reference_routing(index, experts)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize(("tokens", "top_k", "tiles"), [(1, 2, MoeTiles()), (37, 4, MoeTiles(16, 32, 32))])
def test_fused_moe_equals_the_reference(dtype: torch.dtype, tokens: int, top_k: int, tiles: MoeTiles):
    experts, hidden, inter = 8, 64, 48  # intermediate not a multiple of the column tile
    generator = torch.Generator().manual_seed(tokens)
    x = torch.randn(tokens, hidden, generator=generator).to(dtype)
    gate_up = ExpertTensors((torch.randn(experts, 2 * inter, hidden, generator=generator) / 8).to(dtype))
    down = ExpertTensors((torch.randn(experts, hidden, inter, generator=generator) / 8).to(dtype))
    index, weights = _routing(tokens, experts, top_k, seed=tokens)
    got = fused_moe(x, gate_up, down, index, weights, tiles)
    want = reference_moe(x, gate_up, down, index, weights)
    assert got.dtype == dtype
    tolerance = 1e-4 if dtype == torch.float32 else 2e-2
    torch.testing.assert_close(got.float(), want.float(), rtol=tolerance, atol=tolerance)


def test_fused_moe_applies_per_channel_scales():
    experts, hidden, inter, tokens = 4, 32, 32, 9
    generator = torch.Generator().manual_seed(5)
    x = torch.randn(tokens, hidden, generator=generator)
    gate_up = ExpertTensors(
        torch.randn(experts, 2 * inter, hidden, generator=generator).round(), torch.rand(experts, 2 * inter) / 16
    )
    down = ExpertTensors(
        torch.randn(experts, hidden, inter, generator=generator).round(), torch.rand(experts, hidden) / 16
    )
    index, weights = _routing(tokens, experts, 2, seed=5)
    got = fused_moe(x, gate_up, down, index, weights, MoeTiles(16, 32, 32))
    torch.testing.assert_close(got, reference_moe(x, gate_up, down, index, weights), rtol=1e-4, atol=1e-4)


def _logits(model) -> torch.Tensor:
    prompt = torch.tensor([[2, 40, 51, 77, 300, 12, 9, 610]])
    canvas = torch.randint(3, 1000, (1, 16), generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        cache = DynamicCache(config=model.config.get_text_config(decoder=True))
        model.model.encoder(input_ids=prompt, position_ids=torch.arange(8)[None], **with_cache(cache))
        positions = torch.arange(8, 24)[None]
        return model(decoder_input_ids=canvas, decoder_position_ids=positions, **with_cache(cache)).logits


def test_fused_experts_in_the_model_give_the_stock_logits(tiny_checkpoint: Path):
    model = load_checkpoint(str(tiny_checkpoint), device="cpu").model
    stock = _logits(model)
    kernels = Kernels(grouped_mm=False, scaled_grouped_mm=False, scaled_mm=False, triton_moe=True)
    layers = len(model.model.decoder.layers)
    assert install_grouped_experts(model, kernels=kernels, triton=True) == layers
    decoder, encoder = model.model.decoder.layers[0], model.model.encoder.language_model.layers[0]
    assert isinstance(decoder.experts, FusedExperts) and encoder.experts is decoder.experts
    torch.testing.assert_close(_logits(model), stock, rtol=1e-4, atol=1e-4)
    assert install_grouped_experts(model, kernels=kernels, triton=True) == 0  # already installed
