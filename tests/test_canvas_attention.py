"""The canvas attention kernel equals its plain-PyTorch reference (on the CPU through Triton's interpreter, which
conftest.py turns on where there is no GPU)."""

from __future__ import annotations

import pytest
import torch

from diffusion_copilot.engine.kernels.canvas_attention import (
    AttentionTiles,
    canvas_attention,
    reference_canvas_attention,
)

pytest.importorskip("triton")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize(
    ("heads", "kv_heads", "canvas", "canvas_len", "slots", "prefix_len", "tiles"),
    [
        (4, 2, 12, 9, 40, (40, 17), AttentionTiles(16, 16, 32)),  # splits, a short row, padded canvas
        (2, 2, 16, 16, 0, (0, 0), AttentionTiles(16, 16, 16)),  # no prompt at all
        (8, 1, 5, 5, 64, (3, 64), AttentionTiles(32, 32, 64)),  # one K/V head for eight query heads
    ],
)
def test_canvas_attention_equals_the_reference(dtype, heads, kv_heads, canvas, canvas_len, slots, prefix_len, tiles):
    generator = torch.Generator().manual_seed(canvas)
    batch, dim = len(prefix_len), 32

    def rand(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator).to(dtype)

    query = rand(batch, heads, canvas, dim)
    prefix_keys, prefix_values = rand(batch, kv_heads, slots, dim), rand(batch, kv_heads, slots, dim)
    canvas_keys, canvas_values = rand(batch, kv_heads, canvas, dim), rand(batch, kv_heads, canvas, dim)
    lengths = torch.tensor(prefix_len, dtype=torch.int32)
    args = (query, prefix_keys, prefix_values, lengths, canvas_keys, canvas_values)
    got = canvas_attention(*args, torch.tensor([canvas_len], dtype=torch.int32), 0.25, tiles)
    want = reference_canvas_attention(*args, canvas_len, 0.25)
    assert got.shape == (batch, canvas, heads, dim) and got.dtype == dtype
    tolerance = 1e-4 if dtype == torch.float32 else 2e-3
    torch.testing.assert_close(got.float(), want.float(), rtol=tolerance, atol=tolerance)
