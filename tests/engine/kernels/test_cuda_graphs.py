"""The static-shape decoder step (padded canvas, prompt KV in fixed buffers, masks) that CUDA graphs replay gives
the eager step's logits and the same completions; run here without capturing, since this machine has no GPU."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from diffusion_copilot.engine import Job, load_checkpoint
from diffusion_copilot.engine.backends.local.denoise import Denoiser
from diffusion_copilot.engine.hf_internals import with_cache
from diffusion_copilot.engine.kernels.cuda_graphs import GraphBuckets, StepGraphs

PROMPT = (2, 40, 51, 77, 300, 12, 9, 610)
BUCKETS = GraphBuckets(canvas_lengths=(16, 32), prefix_lengths=(16, 64), max_batch=3)


@pytest.fixture(scope="module")
def model(tiny_checkpoint: Path):
    return load_checkpoint(str(tiny_checkpoint), device="cpu").model


def _prefill(model, prompt_length: int, batch: int):
    from transformers import DynamicCache

    ids = torch.randint(3, 1000, (1, prompt_length), generator=torch.Generator().manual_seed(prompt_length))
    cache = DynamicCache(config=model.config.get_text_config(decoder=True))
    positions = torch.arange(prompt_length, dtype=torch.int32)[None]
    model.model.encoder(input_ids=ids, **with_cache(cache), position_ids=positions, use_cache=True)
    if batch > 1:
        cache.batch_repeat_interleave(batch)
    return cache


@pytest.mark.parametrize(
    ("prompt_length", "canvas_length", "batch"),
    [(8, 16, 1), (8, 20, 2), (40, 32, 3)],  # 40 > the sliding window (16): sliding layers hold 15 tokens
)
def test_static_step_gives_the_eager_logits(model, prompt_length: int, canvas_length: int, batch: int):
    generator = torch.Generator().manual_seed(5)
    canvas = torch.randint(3, 1000, (batch, canvas_length), generator=generator)
    sc_logits = torch.randn(batch, canvas_length, model.config.text_config.vocab_size, generator=generator)
    positions = torch.arange(prompt_length, prompt_length + canvas_length, dtype=torch.int32)[None]
    graphs = StepGraphs(model, BUCKETS, capture=False)
    with torch.inference_mode():
        cache = _prefill(model, prompt_length, batch)
        step = graphs.step_for(cache, positions, batch)
        assert step is not None
        for sc in (None, sc_logits):  # the first step has no self-conditioning, later ones do
            eager = model(
                decoder_input_ids=canvas,
                self_conditioning_logits=sc,
                **with_cache(cache),
                decoder_position_ids=positions,
            ).logits
            static = step(canvas, sc)
            assert static.shape == eager.shape == (batch, canvas_length, model.config.text_config.vocab_size)
            torch.testing.assert_close(static, eager, rtol=1e-5, atol=1e-5)
    (shape,) = graphs.graphs
    assert (shape.canvas, shape.prefix) == ((32 if canvas_length > 16 else 16), (64 if prompt_length > 16 else 16))


@pytest.mark.parametrize(
    ("canvas", "steps", "canvases", "batch"),
    [(32, 8, 1, 1), (16, 4, 3, 1), (20, 5, 2, 3)],  # padded canvas; the prompt outgrows a prefix bucket
)
def test_denoiser_with_static_steps_gives_the_same_completions(model, canvas, steps, canvases, batch):
    from diffusion_copilot.engine.backends.local.sampler import SamplerParams

    params = SamplerParams.from_generation_config(model.generation_config)
    job = Job(
        prompt_ids=PROMPT, canvas_length=canvas, max_steps=steps, max_canvases=canvases, alternatives=batch, seed=99
    )
    eager = Denoiser(model, params).run(job)
    graphs = StepGraphs(model, BUCKETS, capture=False)
    static = Denoiser(model, params, graphs=graphs).run(job)
    assert graphs.graphs  # the static path ran
    assert [c.token_ids for c in static.canvases] == [c.token_ids for c in eager.canvases]
    for mine, theirs in zip(static.canvases, eager.canvases, strict=True):
        assert mine.confidence == pytest.approx(theirs.confidence, abs=1e-5)


@pytest.mark.parametrize(
    ("prompt_length", "canvas_length", "batch"),
    [(65, 16, 1), (8, 33, 1), (8, 16, 4)],  # prompt, canvas or batch past the largest bucket
)
def test_blocks_past_the_buckets_run_eagerly(model, prompt_length: int, canvas_length: int, batch: int):
    graphs = StepGraphs(model, BUCKETS, capture=False)
    positions = torch.arange(prompt_length, prompt_length + canvas_length)[None]
    with torch.inference_mode():
        assert graphs.step_for(_prefill(model, prompt_length, batch), positions, batch) is None
    assert not graphs.graphs


def test_least_recently_used_graphs_are_dropped_with_their_buffers(model):
    graphs = StepGraphs(model, GraphBuckets(canvas_lengths=(16, 32), prefix_lengths=(16, 64), max_graphs=2), False)
    with torch.inference_mode():
        short, long = _prefill(model, 8, 1), _prefill(model, 40, 1)
        for cache, prompt_length, canvas_length in [(short, 8, 16), (short, 8, 32), (long, 40, 16)]:
            positions = torch.arange(prompt_length, prompt_length + canvas_length)[None]
            assert graphs.step_for(cache, positions, 1) is not None
    assert [(shape.canvas, shape.prefix) for shape in graphs.graphs] == [(32, 16), (16, 64)]
    assert sorted(graphs.prefixes) == [(1, 16), (1, 64)]
    graphs.clear()
    assert not graphs.graphs and not graphs.prefixes


def test_a_cpu_model_never_captures(model):
    assert StepGraphs(model).capture is False
