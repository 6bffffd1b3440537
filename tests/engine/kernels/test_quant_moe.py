"""The weight-only quantized kernels (int8, fp8, int4, NVFP4, dequantized in registers) equal their plain-PyTorch
references on small shapes: on the CPU through Triton's interpreter (conftest.py), on the GPU where there is one."""

from __future__ import annotations

import pytest
import torch
from small_models import kernel_tolerance, random_routing

from diffusion_copilot.engine.kernels.moe_tiles import MoeTiles
from diffusion_copilot.engine.kernels.quant_moe import (
    QuantExperts,
    QuantLinear,
    quant_linear,
    quant_moe,
    reference_quant_linear,
    reference_quant_moe,
)
from diffusion_copilot.engine.weights.formats import weight_format

pytest.importorskip("triton")

QUANTIZED = ["int8", "fp8", "int4", "nvfp4"]


@pytest.mark.parametrize("name", QUANTIZED)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_quant_moe_equals_its_reference(kernel_device, name: str, dtype: torch.dtype):
    experts, hidden, inter, tokens, top_k = 4, 256, 192, 9, 2  # int4: groups of 128 for gate/up, 64 for down
    generator = torch.Generator().manual_seed(3)
    fmt = weight_format(name)
    gate_up = fmt.quantize(torch.randn(experts, 2 * inter, hidden, generator=generator) / 8).to(kernel_device)
    down = fmt.quantize(torch.randn(experts, hidden, inter, generator=generator) / 8).to(kernel_device)
    x = torch.randn(tokens, hidden, generator=generator).to(kernel_device, dtype)
    index, weights = (t.to(kernel_device) for t in random_routing(tokens, experts, top_k, seed=3))
    got = quant_moe(x, gate_up, down, index, weights, MoeTiles(16, 32, 64))
    want = reference_quant_moe(x, gate_up, down, index, weights)
    assert got.dtype == dtype
    tolerance = kernel_tolerance(dtype, kernel_device)
    torch.testing.assert_close(got.float(), want.float(), rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("name", QUANTIZED)
@pytest.mark.parametrize("rows", [1, 19])
def test_quant_linear_equals_its_reference(kernel_device, name: str, rows: int):
    generator = torch.Generator().manual_seed(rows)
    q = weight_format(name).quantize(torch.randn(80, 256, generator=generator)).to(kernel_device)  # 80: a ragged tile
    x = torch.randn(2, rows, 256, generator=generator).to(kernel_device)
    got = quant_linear(x, q, MoeTiles(16, 32, 64))
    assert got.shape == (2, rows, 80)
    tolerance = kernel_tolerance(torch.float32, kernel_device)
    torch.testing.assert_close(got, reference_quant_linear(x, q), rtol=tolerance, atol=tolerance)


def test_the_modules_hold_their_tensors_as_buffers_and_run_the_kernels(kernel_device):
    generator = torch.Generator().manual_seed(4)
    fmt = weight_format("int4")
    gate_up = fmt.quantize(torch.randn(4, 256, 128, generator=generator) / 8)  # hidden 128, intermediate 128
    down = fmt.quantize(torch.randn(4, 128, 128, generator=generator) / 8)
    experts = QuantExperts(gate_up, down).to(kernel_device)
    assert {n for n, _ in experts.named_buffers()} == {
        "gate_up__weight_packed",
        "gate_up__weight_scale",
        "down__weight_packed",
        "down__weight_scale",
    }
    x = torch.randn(5, 128, generator=generator).to(kernel_device)
    index, weights = (t.to(kernel_device) for t in random_routing(5, 4, 2, seed=4))
    want = reference_quant_moe(x, *experts.weights(), index, weights)
    torch.testing.assert_close(experts(x, index, weights), want, rtol=1e-3, atol=1e-3)
    linear = QuantLinear(fmt.quantize(torch.randn(48, 128, generator=generator))).to(kernel_device)
    torch.testing.assert_close(linear(x), reference_quant_linear(x, linear.quantized()), rtol=1e-3, atol=1e-3)
