"""The canvas attention kernel equals its plain-PyTorch reference (on the CPU through Triton's interpreter, which
conftest.py turns on where there is no GPU)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import DynamicCache

from diffusion_copilot.engine import Engine, Job, load_checkpoint
from diffusion_copilot.engine.backends.local.options import EngineOptions
from diffusion_copilot.engine.hf_internals import with_cache
from diffusion_copilot.engine.kernels.canvas_attention import (
    AttentionTiles,
    canvas_attention,
    reference_canvas_attention,
)
from diffusion_copilot.engine.kernels.compiled_layers import install_compiled_layers
from diffusion_copilot.engine.kernels.cuda_graphs import GraphBuckets, StepGraphs

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
def test_canvas_attention_equals_the_reference(
    kernel_device, dtype, heads, kv_heads, canvas, canvas_len, slots, prefix_len, tiles
):
    generator = torch.Generator().manual_seed(canvas)
    batch, dim = len(prefix_len), 32

    def rand(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator).to(kernel_device, dtype)

    query = rand(batch, heads, canvas, dim)
    prefix_keys, prefix_values = rand(batch, kv_heads, slots, dim), rand(batch, kv_heads, slots, dim)
    canvas_keys, canvas_values = rand(batch, kv_heads, canvas, dim), rand(batch, kv_heads, canvas, dim)
    lengths = torch.tensor(prefix_len, dtype=torch.int32, device=kernel_device)
    args = (query, prefix_keys, prefix_values, lengths, canvas_keys, canvas_values)
    got = canvas_attention(*args, torch.tensor([canvas_len], dtype=torch.int32, device=kernel_device), 0.25, tiles)
    want = reference_canvas_attention(*args, canvas_len, 0.25)
    assert got.shape == (batch, canvas, heads, dim) and got.dtype == dtype
    tolerance = 1e-4 if dtype == torch.float32 and kernel_device.type == "cpu" else 2e-3  # TF32 on a GPU
    torch.testing.assert_close(got.float(), want.float(), rtol=tolerance, atol=tolerance)


PROMPT = (2, 40, 51, 77, 300, 12, 9, 610, 33, 41, 95, 7, 18, 260, 14, 70, 301, 5, 99, 120)  # > the sliding window


@pytest.fixture
def model(tiny_checkpoint: Path, kernel_device):
    return load_checkpoint(str(tiny_checkpoint), device=str(kernel_device), dtype="float32").model


def _cache(model, batch: int):
    cache = DynamicCache(config=model.config.get_text_config(decoder=True))
    positions = torch.arange(len(PROMPT), device=model.device)[None]
    prompt = torch.tensor([PROMPT], device=model.device)
    model.model.encoder(input_ids=prompt, position_ids=positions, use_cache=True, **with_cache(cache))
    if batch > 1:
        cache.batch_repeat_interleave(batch)
    return cache


@pytest.mark.parametrize(("canvas_length", "batch"), [(16, 1), (20, 2)])  # 20: a padded graph bucket
def test_decoder_attending_in_place_gives_the_stock_logits(model, canvas_length: int, batch: int):
    generator = torch.Generator().manual_seed(canvas_length)
    canvas = torch.randint(3, 1000, (batch, canvas_length), generator=generator).to(model.device)
    positions = torch.arange(len(PROMPT), len(PROMPT) + canvas_length, dtype=torch.int32, device=model.device)[None]
    with torch.inference_mode():
        cache = _cache(model, batch)
        stock = model(decoder_input_ids=canvas, decoder_position_ids=positions, **with_cache(cache)).logits
        install_compiled_layers(model, compile_regions=False, in_place_attention=True)
        eager = model(decoder_input_ids=canvas, decoder_position_ids=positions, **with_cache(cache)).logits
        step = StepGraphs(model, GraphBuckets(canvas_lengths=(16, 32), prefix_lengths=(64,)), capture=False)
        static = step.step_for(cache, positions, batch)
        assert static is not None
        tolerance = 1e-4 if model.device.type == "cpu" else 2e-2  # TF32 on a GPU
        torch.testing.assert_close(eager, stock, rtol=tolerance, atol=tolerance)
        torch.testing.assert_close(static(canvas, None), stock, rtol=tolerance, atol=tolerance)


def test_engine_with_canvas_attention_gives_the_stock_completion(tiny_checkpoint: Path, kernel_device):
    job = Job(prompt_ids=PROMPT, canvas_length=16, max_steps=4, max_canvases=1, seed=8)
    device, eager = str(kernel_device), EngineOptions(eager=True)  # eager: only the attention differs
    stock = Engine.load(str(tiny_checkpoint), device=device, dtype="float32", options=eager).run(job)
    options = EngineOptions(canvas_attention=True, graphs=False, grouped_moe=False, fused_norms=False)
    fast = Engine.load(str(tiny_checkpoint), device=device, dtype="float32", options=options).run(job)
    assert stock.error is None and fast.error is None
    assert [c.token_ids for c in fast.canvases] == [c.token_ids for c in stock.canvases]
