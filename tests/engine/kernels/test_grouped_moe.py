"""Grouped expert kernels give the stock DiffusionGemma experts' outputs; fp8 weights stay close to them."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

import pytest
import torch

from diffusion_copilot.engine import Engine, Job, load_checkpoint
from diffusion_copilot.engine.backends.local.options import EngineOptions, apply_options
from diffusion_copilot.engine.hf_internals import with_cache
from diffusion_copilot.engine.kernels.agreement import fp8_agreement, logits_agreement
from diffusion_copilot.engine.kernels.fp8 import Fp8Linear, dequantize, quantize_rows, quantize_weight
from diffusion_copilot.engine.kernels.grouped_moe import (
    ExpertWeights,
    Fp8ExpertWeights,
    GroupedExperts,
    Kernels,
    expert_order,
    install_fp8_linears,
    install_grouped_experts,
    probe_kernels,
    reference_grouped_mm,
    text_layers,
)
from diffusion_copilot.engine.kernels.quant_moe import QuantExperts
from diffusion_copilot.engine.kernels.report import kernel_report

EXPERTS, TOP_K, HIDDEN, INTERMEDIATE = 8, 3, 64, 32


def _stock_experts(dtype: torch.dtype):
    """transformers' own experts module, forced onto its loop-over-experts path."""
    from transformers import DiffusionGemmaTextConfig
    from transformers.models.diffusion_gemma.modeling_diffusion_gemma import DiffusionGemmaTextExperts

    config = DiffusionGemmaTextConfig(
        hidden_size=HIDDEN,
        num_experts=EXPERTS,
        top_k_experts=TOP_K,
        moe_intermediate_size=INTERMEDIATE,
        num_hidden_layers=1,
        layer_types=["full_attention"],
    )
    config._experts_implementation = "eager"
    torch.manual_seed(0)
    experts = DiffusionGemmaTextExperts(config)
    with torch.no_grad():
        experts.gate_up_proj.normal_(0, 0.1)
        experts.down_proj.normal_(0, 0.1)
    return experts.to(dtype)


def _routing(tokens: int, dtype: torch.dtype, skip_expert: int | None = 5):
    """Hidden states [tokens, hidden], top-k expert ids and weights; `skip_expert` gets no tokens."""
    generator = torch.Generator().manual_seed(1)
    choices = [e for e in range(EXPERTS) if e != skip_expert]
    index = torch.stack([torch.tensor(choices)[torch.randperm(len(choices), generator=generator)[:TOP_K]]
                         for _ in range(tokens)])  # fmt: skip
    weights = torch.rand(tokens, TOP_K, generator=generator)
    hidden = torch.randn(tokens, HIDDEN, generator=generator).to(dtype)
    return hidden, index, weights


def _grouped(stock, use_kernel: bool) -> GroupedExperts:
    return GroupedExperts(
        ExpertWeights(stock.gate_up_proj, use_kernel), ExpertWeights(stock.down_proj, use_kernel), stock.act_fn, EXPERTS
    )


def test_expert_order_groups_pairs_by_expert():
    index = torch.tensor([[2, 0], [0, 3], [2, 1]])  # pairs 0..5 = (token, slot) flattened
    order = expert_order(index, num_experts=5)
    assert order.offsets.tolist() == [2, 3, 5, 6, 6]  # expert 4 is empty
    assert order.offsets.dtype == torch.int32
    assert index.reshape(-1)[order.perm].tolist() == [0, 0, 1, 2, 2, 3]
    assert order.perm.tolist() == [1, 2, 5, 0, 4, 3]  # stable: equal experts keep token order


def test_reference_grouped_mm_is_one_matmul_per_expert():
    x, weight = torch.randn(6, 4), torch.randn(3, 5, 4)
    out = reference_grouped_mm(x, weight, torch.tensor([2, 2, 6], dtype=torch.int32))
    torch.testing.assert_close(out[:2], x[:2] @ weight[0].T)
    torch.testing.assert_close(out[2:], x[2:] @ weight[2].T)


@pytest.mark.parametrize("use_kernel", [True, False], ids=["grouped-mm", "reference"])
@pytest.mark.parametrize("tokens", [1, 7, 64])
def test_grouped_experts_match_stock_in_float32(use_kernel: bool, tokens: int):
    if use_kernel and not probe_kernels(torch.device("cpu"), torch.float32).grouped_mm:
        pytest.skip("torch._grouped_mm has no CPU kernel in this torch")
    stock = _stock_experts(torch.float32)
    hidden, index, weights = _routing(tokens, torch.float32)
    with torch.no_grad():
        torch.testing.assert_close(_grouped(stock, use_kernel)(hidden, index, weights), stock(hidden, index, weights))


@pytest.mark.parametrize("use_kernel", [True, False], ids=["grouped-mm", "reference"])
def test_grouped_experts_match_stock_in_bfloat16(use_kernel: bool):
    if use_kernel and not probe_kernels(torch.device("cpu"), torch.bfloat16).grouped_mm:
        pytest.skip("torch._grouped_mm has no CPU kernel in this torch")
    stock = _stock_experts(torch.bfloat16)
    hidden, index, weights = _routing(48, torch.bfloat16)
    with torch.no_grad():
        got, want = _grouped(stock, use_kernel)(hidden, index, weights), stock(hidden, index, weights)
    assert got.dtype == torch.bfloat16
    # The stock module adds the top-k outputs in bfloat16, this one in float32: a few bf16 ulps apart.
    assert float((got.float() - want.float()).abs().max()) <= 0.02 * float(want.float().abs().max())


def test_fp8_experts_stay_close_to_stock():
    stock = _stock_experts(torch.float32)
    hidden, index, weights = _routing(64, torch.float32)
    fp8 = GroupedExperts(
        Fp8ExpertWeights(stock.gate_up_proj, use_kernel=False),
        Fp8ExpertWeights(stock.down_proj, use_kernel=False),
        stock.act_fn,
        EXPERTS,
    )
    assert fp8.is_fp8 and fp8.gate_up.qweight.dtype == torch.float8_e4m3fn
    with torch.no_grad():
        got, want = fp8(hidden, index, weights), stock(hidden, index, weights)
    relative = float((got - want).norm() / want.norm())
    assert 0 < relative < 0.08  # e4m3 keeps 3 mantissa bits: a few percent, never exact


def test_quantize_rows_scales_each_row_to_the_fp8_range():
    x = torch.tensor([[1.0, -2.0, 0.5], [0.0, 0.0, 0.0], [300.0, 1e-3, -900.0]])
    q, scale = quantize_rows(x)
    assert q.dtype == torch.float8_e4m3fn and scale.shape == (3,)
    assert q.float().abs().amax(dim=-1).tolist() == [448.0, 0.0, 448.0]
    torch.testing.assert_close(q.float() * scale[:, None], x, rtol=0.07, atol=1e-3)


def test_fp8_linear_kernel_and_dequantized_paths_agree():
    generator = torch.Generator().manual_seed(2)
    weight = torch.randn(48, 32, generator=generator)
    x = torch.randn(2, 5, 32, generator=generator)
    if not probe_kernels(torch.device("cpu"), torch.float32).scaled_mm:
        pytest.skip("torch._scaled_mm has no CPU kernel in this torch")
    kernel, dequantized = Fp8Linear(weight, use_kernel=True)(x), Fp8Linear(weight, use_kernel=False)(x)
    assert kernel.shape == (2, 5, 48)
    exact = x @ weight.T
    # Only the kernel path quantizes the activations too; both stay within a few percent of the exact product.
    for out in (kernel, dequantized):
        assert float((out - exact).norm() / exact.norm()) < 0.08


def _decoder_logits(model, canvas_length: int = 16) -> torch.Tensor:
    """Logits of one decoder step over a fixed prompt, as the denoising loop runs it."""
    from transformers import DynamicCache

    prompt = torch.tensor([[2, 40, 51, 77, 300, 12, 9, 610]])
    canvas = torch.randint(3, 1000, (1, canvas_length), generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        cache = DynamicCache(config=model.config.get_text_config(decoder=True))
        positions = torch.arange(prompt.shape[1])[None]
        model.model.encoder(input_ids=prompt, **with_cache(cache), position_ids=positions, use_cache=True)
        canvas_positions = torch.arange(prompt.shape[1], prompt.shape[1] + canvas_length)[None]
        return model(decoder_input_ids=canvas, **with_cache(cache), decoder_position_ids=canvas_positions).logits


def test_installed_grouped_experts_give_the_stock_logits(tiny_checkpoint: Path):
    model = load_checkpoint(str(tiny_checkpoint), device="cpu").model
    model.set_experts_implementation("eager")  # transformers' loop over experts
    stock = _decoder_logits(model)
    layers = model.config.text_config.num_hidden_layers
    assert install_grouped_experts(model) == layers  # one module per layer: encoder and decoder share it
    encoder, decoder = model.model.encoder.language_model.layers[0], model.model.decoder.layers[0]
    assert isinstance(decoder.experts, GroupedExperts) and encoder.experts is decoder.experts
    assert install_grouped_experts(model) == 0  # already installed
    torch.testing.assert_close(_decoder_logits(model), stock, rtol=1e-5, atol=1e-5)


def _round_to_fp8(weight: torch.Tensor) -> None:
    weight.copy_(dequantize(*quantize_weight(weight), weight.dtype))


def test_fp8_model_is_the_stock_model_on_fp8_rounded_weights(tiny_checkpoint: Path):
    fp8 = load_checkpoint(str(tiny_checkpoint), device="cpu").model
    rounded = load_checkpoint(str(tiny_checkpoint), device="cpu").model
    plain = Kernels(grouped_mm=False, scaled_grouped_mm=False, scaled_mm=False)  # weights-only fp8: exact maths
    install_grouped_experts(fp8, fp8=True, kernels=plain)
    # 4 layers of q, k, v, o and 3 MLP linears, less the full-attention layer's missing v_proj, plus 3 of the
    # self-conditioning MLP
    assert install_fp8_linears(fp8, kernels=plain) == 4 * 7 - 1 + 3
    decoder = rounded.model.decoder  # the encoder layers share these weights
    with torch.no_grad():
        for layer in decoder.layers:
            _round_to_fp8(layer.experts.gate_up_proj)
            _round_to_fp8(layer.experts.down_proj)
        for module in [*(layer.self_attn for layer in decoder.layers), *(layer.mlp for layer in decoder.layers)]:
            for name in ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"):
                if getattr(module, name, None) is not None:
                    _round_to_fp8(getattr(module, name).weight)
        for name in ("gate_proj", "up_proj", "down_proj"):
            _round_to_fp8(getattr(decoder.self_conditioning, name).weight)
    torch.testing.assert_close(_decoder_logits(fp8), _decoder_logits(rounded), rtol=1e-5, atol=1e-5)


def test_fp8_agreement_converts_the_model_and_reports_the_difference(tiny_checkpoint: Path):
    model = load_checkpoint(str(tiny_checkpoint), device="cpu").model
    spread = float(_decoder_logits(model).std())
    old_weight = weakref.ref(model.model.decoder.layers[0].experts.gate_up_proj)
    agreement = fp8_agreement(model, lambda: _decoder_logits(model), dense=False)
    gc.collect()
    assert old_weight() is None  # the model-dtype expert weights are freed, not kept beside the fp8 ones
    # fp8 experts move the logits a little, far less than they differ from each other; the argmax of a random
    # model's near-flat logits is too fragile to check here (bench/gpu/fastpath_check.py reports it).
    assert 0 < agreement.mean_abs_diff < 0.25 * spread
    assert 0 < agreement.top1_agreement <= 1
    layers = list(text_layers(model))
    assert all(layer.experts.is_fp8 for layer in layers)
    assert isinstance(layers[0].self_attn.q_proj, torch.nn.Linear)  # dense=False keeps the linears
    assert layers[0].router.proj.weight.dtype == torch.float32  # routing stays in the model's dtype


def test_logits_agreement_counts_argmax_matches():
    reference = torch.tensor([[[0.0, 1.0, 0.5], [2.0, 0.0, 0.0]]])
    other = torch.tensor([[[0.0, 1.0, 1.5], [2.0, 0.0, 0.0]]])
    agreement = logits_agreement(reference, other)
    assert agreement.top1_agreement == 0.5 and agreement.max_abs_diff == 1.0
    assert agreement.mean_abs_diff == pytest.approx(1 / 6)


def test_options_leave_the_cpu_model_stock_unless_asked(tiny_checkpoint: Path):
    model = load_checkpoint(str(tiny_checkpoint), device="cpu").model
    assert apply_options(model, EngineOptions()) is None  # no graphs on the CPU
    assert not isinstance(model.model.decoder.layers[0].experts, GroupedExperts)
    assert apply_options(model, EngineOptions(eager=True, grouped_moe=True)) is None
    assert not isinstance(model.model.decoder.layers[0].experts, GroupedExperts)
    assert apply_options(model, EngineOptions(grouped_moe=True)) is None
    assert isinstance(model.model.decoder.layers[0].experts, GroupedExperts)


def test_engine_with_grouped_experts_gives_the_stock_completion(tiny_checkpoint: Path):
    job = Job(prompt_ids=(2, 40, 51, 77, 300, 12, 9, 610), canvas_length=16, max_steps=6, max_canvases=2, seed=8)
    stock = Engine.load(str(tiny_checkpoint), device="cpu").run(job)
    grouped_engine = Engine.load(str(tiny_checkpoint), device="cpu", options=EngineOptions(grouped_moe=True))
    assert isinstance(grouped_engine.loaded.model.model.decoder.layers[0].experts, GroupedExperts)
    grouped = grouped_engine.run(job)
    assert stock.error is None and grouped.error is None
    assert [c.token_ids for c in grouped.canvases] == [c.token_ids for c in stock.canvases]


def test_the_kernel_report_reads_what_the_model_runs(tiny_checkpoint: Path):
    loaded = load_checkpoint(str(tiny_checkpoint), device="cpu", dtype="float32")
    stock = kernel_report(loaded.model, graphs=False)
    assert (stock.experts, stock.norms, stock.dense, stock.step) == (
        "stock loop over experts",
        "stock",
        "float32",
        "eager",
    )
    assert stock.notes == ("CPU: the GPU kernels are off",) and stock.line().endswith("(CPU: the GPU kernels are off)")
    apply_options(loaded.model, EngineOptions(grouped_moe=True, fused_norms=True))
    swapped = kernel_report(loaded.model, graphs=False)
    assert (swapped.experts, swapped.norms) == ("grouped matmuls (float32)", "fused RMSNorm")


def test_quantized_experts_keep_their_own_kernels_under_the_gpu_options(tiny_checkpoint: Path):
    # On a GPU the options install grouped experts by default; weight-only int8/int4/NVFP4 experts have no dense
    # copy to group, so they stay as they are and still complete.
    loaded = load_checkpoint(str(tiny_checkpoint), device="cpu", weights="int8", use_kernels=True)
    assert isinstance(loaded.model.model.decoder.layers[0].experts, QuantExperts)
    assert install_grouped_experts(loaded.model, triton=True) == 0
    engine = Engine(loaded, EngineOptions(grouped_moe=True, triton_moe=True, fp8_dense=True))
    assert isinstance(engine.loaded.model.model.decoder.layers[0].experts, QuantExperts)
    result = engine.run(Job(prompt_ids=(2, 40, 51, 77), canvas_length=8, max_steps=2, seed=1))
    assert result.error is None and len(result.canvases[0].token_ids) == 8
