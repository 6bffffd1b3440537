"""Prefix KV reuse across jobs: a prompt that extends an earlier one encodes only the new tokens, and the
decoder sees the same keys and values as with a fresh encoding."""

from __future__ import annotations

from pathlib import Path

import torch

from diffusion_copilot.engine import Job, load_checkpoint
from diffusion_copilot.engine.backends.local.denoise import Denoiser
from diffusion_copilot.engine.backends.local.prefix_cache import PrefixCache
from diffusion_copilot.engine.hf_internals import with_cache

FIRST = tuple(range(3, 203))  # 200 tokens, longer than the tiny model's sliding window
TYPED = (*FIRST[:-1], 700, 701, 702)  # the last token re-tokenized, three typed


def _first_step_logits(denoiser: Denoiser, prompt: tuple[int, ...]) -> torch.Tensor:
    cache, _ = denoiser.prefill.one(prompt, 2)
    canvas = torch.arange(100, 116).repeat(2, 1)
    positions = torch.arange(len(prompt), len(prompt) + 16, dtype=torch.int32)[None]
    with torch.inference_mode():
        logits: torch.Tensor = denoiser.model(
            decoder_input_ids=canvas, **with_cache(cache), decoder_position_ids=positions
        ).logits
    return logits


def test_extended_prompt_reuses_the_snapshot_and_matches_a_fresh_encoding(tiny_checkpoint: Path):
    loaded = load_checkpoint(str(tiny_checkpoint), device="cpu")
    cached = Denoiser(loaded.model, loaded.params, PrefixCache(lag=16))
    fresh = Denoiser(loaded.model, loaded.params)

    first = cached.run(Job(prompt_ids=FIRST, canvas_length=16, max_steps=2, seed=0))
    assert first.timings.cached_tokens == 0 and first.timings.prefill_tokens == 200
    second = cached.run(Job(prompt_ids=TYPED, canvas_length=16, max_steps=2, seed=0))
    assert second.timings.cached_tokens == 200 - 16
    assert second.timings.prefill_tokens == len(TYPED) - (200 - 16)

    torch.testing.assert_close(_first_step_logits(cached, TYPED), _first_step_logits(fresh, TYPED))


def test_a_different_prompt_misses_and_the_lru_keeps_capacity():
    prefix_cache = PrefixCache(capacity=2, lag=0)
    for n in range(3):
        prefix_cache.store((n, n, n), {"layer": torch.zeros(1)})
    assert prefix_cache.lookup((0, 0, 0, 5)) == (None, 0)  # evicted
    cache, length = prefix_cache.lookup((2, 2, 2, 9))
    assert length == 3 and torch.equal(cache["layer"], torch.zeros(1))
    assert prefix_cache.lookup((7,)) == (None, 0)


def test_each_prefill_is_one_encoder_pass_and_the_snapshot_it_cuts_is_exact(tiny_checkpoint: Path):
    loaded = load_checkpoint(str(tiny_checkpoint), device="cpu")
    cached = Denoiser(loaded.model, loaded.params, PrefixCache(lag=16))
    fresh = Denoiser(loaded.model, loaded.params)
    passes: list[int] = []
    hook = loaded.model.model.encoder.register_forward_hook(lambda module, args, kwargs: passes.append(1))
    try:
        cached.prefill.one(FIRST, 1)  # cold: the snapshot at 184 comes out of the same pass
        cached.prefill.one(TYPED, 1)  # reuses 184, stores 186
        assert len(passes) == 2
    finally:
        hook.remove()
    assert sorted(len(key) for key in cached.prefix_cache.entries) == [184, 186]  # type: ignore[union-attr]
    extended = (*TYPED, 703, 704)
    cache, hit = cached.prefill.one(extended, 1)
    assert hit == 186
    want, _ = fresh.prefill.one(extended, 1)
    assert cache.get_seq_length() == want.get_seq_length() == len(extended)
    for got_layer, want_layer in zip(cache.layers, want.layers, strict=True):
        assert got_layer.get_seq_length() == want_layer.get_seq_length()
        torch.testing.assert_close(got_layer.keys, want_layer.keys)
        torch.testing.assert_close(got_layer.values, want_layer.values)


def test_a_snapshot_taken_before_the_window_fills_is_exact(tiny_checkpoint: Path):
    loaded = load_checkpoint(str(tiny_checkpoint), device="cpu")
    window = int(loaded.model.config.text_config.sliding_window)
    cached = Denoiser(loaded.model, loaded.params, PrefixCache(lag=window))
    fresh = Denoiser(loaded.model, loaded.params)
    first = tuple(range(3, 3 + window + 4))  # the snapshot lands at 4 tokens, the pass ends past the window
    cached.prefill.one(first, 1)
    extended = (*first, 800, 801, 802)
    cache, hit = cached.prefill.one(extended, 1)
    assert hit == 4
    want, _ = fresh.prefill.one(extended, 1)
    for got_layer, want_layer in zip(cache.layers, want.layers, strict=True):
        assert got_layer.get_seq_length() == want_layer.get_seq_length()
        torch.testing.assert_close(got_layer.keys, want_layer.keys)
        torch.testing.assert_close(got_layer.values, want_layer.values)
