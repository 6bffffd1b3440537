"""The fused MoE kernels equal their plain-PyTorch reference (on the CPU through Triton's interpreter, which
conftest.py turns on where there is no GPU), and the blocked routing holds each expert's pairs in order."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from small_models import decoder_logits, kernel_tolerance, random_routing

from diffusion_copilot.engine import load_checkpoint
from diffusion_copilot.engine.kernels.fp8 import quantize_weight
from diffusion_copilot.engine.kernels.fused_experts import FusedExperts
from diffusion_copilot.engine.kernels.fused_moe import ExpertTensors, MoeTiles, fused_moe, reference_moe
from diffusion_copilot.engine.kernels.grouped_moe import Kernels, install_grouped_experts
from diffusion_copilot.engine.kernels.moe_routing import blocked_routing, max_rows, reference_routing
from diffusion_copilot.engine.kernels.report import kernel_report

pytest.importorskip("triton")


@pytest.mark.parametrize(("tokens", "experts", "top_k", "block_m"), [(1, 4, 2, 16), (37, 8, 3, 16), (200, 16, 8, 32)])
def test_blocked_routing_holds_each_experts_pairs_in_order(kernel_device, tokens, experts, top_k, block_m):
    index, _ = random_routing(tokens, experts, top_k, seed=tokens)
    routing = blocked_routing(index.to(kernel_device), experts, block_m)
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
def test_fused_moe_equals_the_reference(kernel_device, dtype: torch.dtype, tokens: int, top_k: int, tiles: MoeTiles):
    experts, hidden, inter = 8, 64, 48  # intermediate not a multiple of the column tile
    generator = torch.Generator().manual_seed(tokens)

    def rand(*shape: int, scale: float = 1.0) -> torch.Tensor:
        return (torch.randn(*shape, generator=generator) * scale).to(kernel_device, dtype)

    x = rand(tokens, hidden)
    gate_up, down = (
        ExpertTensors(rand(experts, 2 * inter, hidden, scale=1 / 8)),
        ExpertTensors(rand(experts, hidden, inter, scale=1 / 8)),
    )
    index, weights = (t.to(kernel_device) for t in random_routing(tokens, experts, top_k, seed=tokens))
    got = fused_moe(x, gate_up, down, index, weights, tiles)
    want = reference_moe(x, gate_up, down, index, weights)
    assert got.dtype == dtype
    tolerance = kernel_tolerance(dtype, kernel_device)
    torch.testing.assert_close(got.float(), want.float(), rtol=tolerance, atol=tolerance)


def test_fused_moe_applies_per_channel_scales(kernel_device):
    experts, hidden, inter, tokens = 4, 32, 32, 9
    generator = torch.Generator().manual_seed(5)
    x = torch.randn(tokens, hidden, generator=generator).to(kernel_device)
    gate_up = ExpertTensors(
        torch.randn(experts, 2 * inter, hidden, generator=generator).round().to(kernel_device),
        (torch.rand(experts, 2 * inter, generator=generator) / 16).to(kernel_device),
    )
    down = ExpertTensors(
        torch.randn(experts, hidden, inter, generator=generator).round().to(kernel_device),
        (torch.rand(experts, hidden, generator=generator) / 16).to(kernel_device),
    )
    index, weights = (t.to(kernel_device) for t in random_routing(tokens, experts, 2, seed=5))
    got = fused_moe(x, gate_up, down, index, weights, MoeTiles(16, 32, 32))
    tolerance = kernel_tolerance(torch.float32, kernel_device)
    torch.testing.assert_close(got, reference_moe(x, gate_up, down, index, weights), rtol=tolerance, atol=tolerance)


@pytest.mark.skipif(
    not torch.cuda.is_available(), reason="bf16 and fp8 kernels run on a GPU (the interpreter has neither)"
)
@pytest.mark.parametrize("fp8", [False, True])
def test_fused_moe_in_bf16_and_fp8_on_the_gpu(fp8: bool):
    experts, hidden, inter, tokens = 16, 256, 128, 40
    generator = torch.Generator().manual_seed(9)
    x = torch.randn(tokens, hidden, generator=generator).to("cuda", torch.bfloat16)
    weights_of = [
        torch.randn(experts, 2 * inter, hidden, generator=generator) / 16,
        torch.randn(experts, hidden, inter, generator=generator) / 16,
    ]
    if fp8:
        gate_up, down = (ExpertTensors(*quantize_weight(w.to("cuda", torch.bfloat16))) for w in weights_of)
    else:
        gate_up, down = (ExpertTensors(w.to("cuda", torch.bfloat16)) for w in weights_of)
    index, weights = (t.cuda() for t in random_routing(tokens, experts, 4, seed=9))
    got = fused_moe(x, gate_up, down, index, weights).float()
    want = reference_moe(x, gate_up, down, index, weights).float()
    assert float((got - want).abs().max()) <= 0.02 * float(want.abs().max())


def test_fused_experts_in_the_model_give_the_stockdecoder_logits(tiny_checkpoint: Path, kernel_device):
    model = load_checkpoint(str(tiny_checkpoint), device=str(kernel_device), dtype="float32").model
    stock = decoder_logits(model)
    kernels = Kernels(grouped_mm=False, scaled_grouped_mm=False, scaled_mm=False, triton_moe=True)
    layers = len(model.model.decoder.layers)
    assert install_grouped_experts(model, kernels=kernels, triton=True) == layers
    decoder, encoder = model.model.decoder.layers[0], model.model.encoder.language_model.layers[0]
    assert isinstance(decoder.experts, FusedExperts) and encoder.experts is decoder.experts
    tolerance = kernel_tolerance(torch.float32, kernel_device)
    torch.testing.assert_close(decoder_logits(model), stock, rtol=tolerance, atol=tolerance)
    assert install_grouped_experts(model, kernels=kernels, triton=True) == 0  # already installed
    assert kernel_report(model, graphs=False).experts == "Triton fused MoE (float32)"
