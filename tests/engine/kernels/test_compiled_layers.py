"""The text layers split around attention compute what the stock layers compute: run eagerly they give the same
bits, compiled by torch.compile (Inductor's C++ backend here, Triton on a GPU) the same logits within float32
rounding, with one compiled graph per region and layer kind, and a compile failure falls back to eager."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import DynamicCache

from diffusion_copilot.engine import Engine, Job, load_checkpoint
from diffusion_copilot.engine.backends.local.options import EngineOptions, apply_options
from diffusion_copilot.engine.hf_internals import with_cache
from diffusion_copilot.engine.kernels.compiled_layers import LayerForward, install_compiled_layers, text_layers

PROMPT = [2, 40, 51, 77, 300, 12, 9, 610, 33, 41, 95, 7, 18, 260, 14, 70, 301, 5, 99, 120]


def _forward(model, canvas_length: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """The encoder's output over PROMPT and the decoder's logits for one canvas after it."""
    length = len(PROMPT)  # longer than the tiny model's sliding window: the sliding layers drop tokens
    canvas = torch.randint(3, 1000, (1, canvas_length), generator=torch.Generator().manual_seed(canvas_length))
    with torch.inference_mode():
        cache = DynamicCache(config=model.config.get_text_config(decoder=True))
        encoded = model.model.encoder(
            input_ids=torch.tensor([PROMPT]), **with_cache(cache), position_ids=torch.arange(length)[None]
        ).last_hidden_state
        positions = torch.arange(length, length + canvas_length)[None]
        logits = model(decoder_input_ids=canvas, **with_cache(cache), decoder_position_ids=positions).logits
    return encoded, logits


def test_eager_regions_give_the_stock_bits(tiny_checkpoint: Path):
    model = load_checkpoint(str(tiny_checkpoint), device="cpu").model
    text = model.config.get_text_config(decoder=True)
    assert len(PROMPT) > text.sliding_window and len(set(text.layer_types)) == 2
    stock = _forward(model)
    regions = install_compiled_layers(model, compile_regions=False)
    assert not regions.compiled
    assert all(isinstance(layer.forward, LayerForward) for layer in text_layers(model))
    for got, want in zip(_forward(model), stock, strict=True):
        assert torch.equal(got, want)


@pytest.mark.slow
def test_compiled_regions_give_the_stock_logits_and_compile_once_per_kind(tiny_checkpoint: Path, tmp_path: Path):
    from torch._dynamo.utils import counters

    model = load_checkpoint(str(tiny_checkpoint), device="cpu").model
    stock = [_forward(model, length) for length in (16, 24)]
    torch._dynamo.reset()
    counters.clear()
    regions = install_compiled_layers(model, cache_dir=tmp_path / "inductor")
    for length, (encoded, logits) in zip((16, 24), stock, strict=True):
        got_encoded, got_logits = _forward(model, length)
        torch.testing.assert_close(got_encoded, encoded, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(got_logits, logits, rtol=1e-4, atol=1e-4)
    assert regions.compiled
    # 2 regions x (encoder, decoder) x (sliding, full) for every layer; a new canvas length needs no new graph.
    assert counters["stats"]["unique_graphs"] <= 8


def test_a_failing_compile_falls_back_to_eager(tiny_checkpoint: Path, caplog: pytest.LogCaptureFixture):
    model = load_checkpoint(str(tiny_checkpoint), device="cpu").model
    stock = _forward(model)
    regions = install_compiled_layers(model, compile_regions=False)

    def broken(*args):
        raise RuntimeError("no compiler for this op")

    regions.compiled, regions.pre = True, broken  # as if the compiled region failed on first use
    for got, want in zip(_forward(model), stock, strict=True):
        assert torch.equal(got, want)
    assert not regions.compiled
    assert "running them eagerly" in caplog.text


@pytest.mark.slow
def test_options_compile_only_where_asked(tiny_checkpoint: Path):
    loaded = load_checkpoint(str(tiny_checkpoint), device="cpu")
    apply_options(loaded.model, EngineOptions())  # the CPU default keeps the stock layers
    assert not any(isinstance(layer.forward, LayerForward) for layer in text_layers(loaded.model))
    engine = Engine(loaded, EngineOptions(compile_layers=True))
    assert all(isinstance(layer.forward, LayerForward) for layer in text_layers(loaded.model))
    result = engine.run(Job(prompt_ids=tuple(PROMPT), canvas_length=16, max_steps=4, seed=1))
    assert result.error is None and result.canvases[0].steps > 0


def test_the_engine_backend_passes_the_switch_on(tiny_checkpoint: Path):
    from diffusion_copilot.engine.backends import BackendConfig, create_backend

    engine = create_backend(BackendConfig(model=str(tiny_checkpoint), device="cpu", compile_layers=True))
    assert all(isinstance(layer.forward, LayerForward) for layer in text_layers(engine.loaded.model))
    assert engine.options.compile_layers
