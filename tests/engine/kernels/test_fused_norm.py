"""The one-kernel RMSNorm swapped into the text layers computes what the stock norm computes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import DynamicCache
from transformers.models.diffusion_gemma.modeling_diffusion_gemma import DiffusionGemmaRMSNorm

from diffusion_copilot.engine import Engine, Job, load_checkpoint
from diffusion_copilot.engine.backends.local.options import EngineOptions, apply_options
from diffusion_copilot.engine.hf_internals import norm_eps, with_cache
from diffusion_copilot.engine.kernels.fused_norm import FusedRMSNorm, install_fused_norms


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("with_scale", [True, False])
def test_fused_norm_matches_the_stock_norm(dtype: torch.dtype, with_scale: bool):
    generator = torch.Generator().manual_seed(0)
    stock = DiffusionGemmaRMSNorm(256, eps=1e-6, with_scale=with_scale).to(dtype)
    if with_scale:
        stock.weight.data = (1 + 0.3 * torch.randn(256, generator=generator)).to(dtype)
    fused = FusedRMSNorm(getattr(stock, "weight", None), norm_eps(stock))
    x = (3 * torch.randn(2, 7, 256, generator=generator)).to(dtype)
    got = fused(x)
    assert got.dtype == dtype
    torch.testing.assert_close(got, stock(x), rtol=1e-6, atol=1e-6)


def _logits(model) -> torch.Tensor:
    prompt = torch.tensor([[2, 40, 51, 77, 300, 12, 9, 610]])
    canvas = torch.randint(3, 1000, (1, 16), generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        cache = DynamicCache(config=model.config.get_text_config(decoder=True))
        model.model.encoder(input_ids=prompt, **with_cache(cache), position_ids=torch.arange(8)[None])
        positions = torch.arange(8, 24)[None]
        return model(decoder_input_ids=canvas, **with_cache(cache), decoder_position_ids=positions).logits


def test_installed_fused_norms_give_the_stock_logits(tiny_checkpoint: Path):
    model = load_checkpoint(str(tiny_checkpoint), device="cpu").model
    stock = _logits(model)
    stock_norms = sum(type(m) is DiffusionGemmaRMSNorm for m in model.model.decoder.modules())
    assert install_fused_norms(model) > 0
    for root in (model.model.encoder.language_model, model.model.decoder):
        assert not any(type(m) is DiffusionGemmaRMSNorm for m in root.modules())
    assert sum(type(m) is FusedRMSNorm for m in model.model.decoder.modules()) == stock_norms
    torch.testing.assert_close(_logits(model), stock, rtol=1e-5, atol=1e-5)
    assert install_fused_norms(model) == 0  # already installed


def test_options_fuse_norms_only_where_asked(tiny_checkpoint: Path):
    model = load_checkpoint(str(tiny_checkpoint), device="cpu").model
    apply_options(model, EngineOptions())  # the CPU default keeps the stock norms
    assert type(model.model.decoder.layers[0].input_layernorm) is DiffusionGemmaRMSNorm
    apply_options(model, EngineOptions(fused_norms=True))
    assert type(model.model.decoder.layers[0].input_layernorm) is FusedRMSNorm


def test_engine_with_fused_norms_gives_the_stock_completion(tiny_checkpoint: Path):
    job = Job(prompt_ids=(2, 40, 51, 77, 300, 12, 9, 610), canvas_length=16, max_steps=6, max_canvases=2, seed=8)
    stock = Engine.load(str(tiny_checkpoint), device="cpu").run(job)
    fused = Engine.load(str(tiny_checkpoint), device="cpu", options=EngineOptions(fused_norms=True)).run(job)
    assert stock.error is None and fused.error is None
    assert [c.token_ids for c in fused.canvases] == [c.token_ids for c in stock.canvases]
