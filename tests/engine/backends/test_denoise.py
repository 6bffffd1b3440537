"""The engine's own denoising loop gives exactly the tokens of transformers' `generate()` for the same seed."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from diffusion_copilot.engine import Job, load_checkpoint
from diffusion_copilot.engine.backends.local.denoise import Denoiser

PROMPT = (2, 40, 51, 77, 300, 12, 9, 610)

CASES = [
    # canvas, steps, canvases, alternatives, confidence threshold (None: no adaptive stop)
    pytest.param(32, 8, 1, 1, 0.005, id="c32-s8"),
    pytest.param(16, 4, 2, 1, 0.005, id="c16-s4-two-canvases"),
    pytest.param(64, 48, 1, 1, 0.005, id="c64-s48-default-steps"),
    pytest.param(8, 6, 1, 1, None, id="c8-s6-no-adaptive-stop"),
    pytest.param(16, 5, 2, 3, 0.005, id="c16-s5-batch3"),
]


def _reference(model, canvas: int, steps: int, canvases: int, batch: int, seed: int, **kwargs) -> list[list[int]]:
    model.config.canvas_length = canvas
    torch.manual_seed(seed)
    ids = torch.tensor([PROMPT]).repeat(batch, 1)
    out = model.generate(ids, max_new_tokens=canvas * canvases, max_denoising_steps=steps, **kwargs)
    return out.sequences[:, len(PROMPT) :].tolist()


def _assert_same(reference: list[list[int]], result, eos: int = 1, pad: int = 0) -> None:
    assert len(result.canvases) == len(reference)
    for ref, canvas in zip(reference, result.canvases, strict=True):
        mine = list(canvas.token_ids)
        assert ref[: len(mine)] == mine
        if canvas.hit_eos:
            assert ref[len(mine)] == eos and all(t == pad for t in ref[len(mine) + 1 :])
        else:
            assert len(mine) == len(ref)


@pytest.mark.parametrize(("canvas", "steps", "canvases", "batch", "confidence"), CASES)
def test_random_checkpoint_matches_generate(tiny_checkpoint: Path, canvas, steps, canvases, batch, confidence):
    loaded = load_checkpoint(str(tiny_checkpoint), device="cpu")
    params = loaded.params
    kwargs = {}
    if confidence is None:
        kwargs = {"stability_threshold": None, "confidence_threshold": None}
        params = dataclasses.replace(params, stability_threshold=0, confidence_threshold=float("-inf"))
    reference = _reference(loaded.model, canvas, steps, canvases, batch, seed=1234, **kwargs)
    job = Job(
        prompt_ids=PROMPT, canvas_length=canvas, max_steps=steps, max_canvases=canvases, alternatives=batch, seed=1234
    )
    _assert_same(reference, Denoiser(loaded.model, params).run(job))


@pytest.mark.parametrize("confidence", [0.5, 5.0])
def test_adaptive_stop_matches_generate(converging_checkpoint: Path, confidence: float):
    loaded = load_checkpoint(str(converging_checkpoint), device="cpu")
    reference = _reference(loaded.model, 16, 32, 3, 2, seed=7, confidence_threshold=confidence)
    job = Job(prompt_ids=PROMPT, canvas_length=16, max_steps=32, max_canvases=3, alternatives=2, seed=7)
    result = Denoiser(loaded.model, dataclasses.replace(loaded.params, confidence_threshold=confidence)).run(job)
    _assert_same(reference, result)
    assert result.steps < 32 * 3  # it did stop early


def test_eos_ends_the_completion_like_generate(converging_checkpoint: Path):
    loaded = load_checkpoint(str(converging_checkpoint), device="cpu")
    with torch.no_grad():
        loaded.model.lm_head.weight[1] *= 1.5  # make <eos> the likeliest token at some positions
    reference = _reference(loaded.model, 16, 12, 3, 1, seed=3)
    result = Denoiser(loaded.model, loaded.params).run(
        Job(prompt_ids=PROMPT, canvas_length=16, max_steps=12, max_canvases=3, seed=3)
    )
    assert result.canvases[0].hit_eos and 0 < len(result.canvases[0].token_ids) < 16
    _assert_same(reference, result)


def test_last_step_stats_are_the_tokens_probability_and_the_distributions_entropy():
    from diffusion_copilot.engine.backends.local.block_sampler import last_step_stats
    from diffusion_copilot.engine.backends.local.sampler import token_entropy

    logits = torch.randn(2, 5, 11, generator=torch.Generator().manual_seed(0)) * 4
    logits[0, 0, 3:] = float("-inf")  # a position whose distribution masks most tokens
    tokens = logits.argmax(-1)
    confidence, entropy = last_step_stats(logits.to(torch.bfloat16), tokens)
    expected = torch.softmax(logits.to(torch.bfloat16).float(), -1).gather(-1, tokens[..., None]).squeeze(-1)
    assert torch.allclose(confidence, expected, atol=1e-6)
    assert torch.allclose(entropy, token_entropy(logits.to(torch.bfloat16).float()), atol=1e-5)
    assert torch.isfinite(entropy).all()


def test_canvases_carry_one_entropy_per_token(tiny_checkpoint: Path):
    loaded = load_checkpoint(str(tiny_checkpoint), device="cpu", dtype="float32")
    result = Denoiser(loaded.model, loaded.params).run(Job(prompt_ids=(1, 2, 3), canvas_length=8, max_steps=3, seed=0,
                                                             alternatives=2))
    for canvas in result.canvases:
        assert len(canvas.entropy) == len(canvas.confidence) == len(canvas.token_ids)
        assert all(h >= 0 for h in canvas.entropy)
