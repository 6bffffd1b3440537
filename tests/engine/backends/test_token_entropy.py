"""The sampler's entropy is exactly what transformers' sampler computes (`Categorical(logits=...).entropy()`)."""

from __future__ import annotations

import pytest
import torch

from diffusion_copilot.engine.backends.local.sampler import token_entropy


@pytest.mark.parametrize(
    ("shape", "scale", "dtype"),
    [
        ((1, 32, 8192), 1.0, torch.float32),
        ((3, 16, 8192), 8.0, torch.float32),
        ((2, 64, 512), 30.0, torch.float32),
        ((1, 8, 1000), 0.01, torch.float32),
        ((2, 8, 512), 4.0, torch.bfloat16),
    ],
)
def test_bit_identical_to_categorical(shape: tuple[int, ...], scale: float, dtype: torch.dtype) -> None:
    generator = torch.Generator().manual_seed(sum(shape))
    logits = (torch.randn(*shape, generator=generator) * scale).to(dtype)
    logits[0, 0, :5] = float("-inf")  # masked tokens: the clamp matters here
    before = logits.clone()
    expected = torch.distributions.Categorical(logits=logits).entropy()
    assert torch.equal(token_entropy(logits), expected)
    assert torch.equal(logits, before)  # the caller's logits are left alone
