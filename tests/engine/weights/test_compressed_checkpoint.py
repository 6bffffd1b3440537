"""Checkpoints in the compressed-tensors layout, written by that library, load through load_checkpoint: every
expert and dense linear stays quantized (no expert in float), the kernels give the logits of the same weights
dequantized, and the dequantized weights are the original ones within each format's precision. Experts come either
as one module per fused parameter or, as LLM Compressor saves them, a linear per expert and projection."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from diffusion_copilot.engine import CheckpointError, load_checkpoint
from diffusion_copilot.engine.kernels.quant_moe import QuantExperts, QuantLinear
from diffusion_copilot.engine.kernels.report import kernel_report
from diffusion_copilot.engine.weights.quantized_model import expert_formats, resident_bytes

pytest.importorskip("triton")
pytest.importorskip("compressed_tensors")
from ct_checkpoints import write_ct_checkpoint
from small_models import decoder_logits, wide_checkpoint

RELATIVE_ERROR = {"fp8": 0.07, "int4": 0.1, "nvfp4": 0.25}


@pytest.fixture(scope="module")
def float_model(tiny_checkpoint: Path):
    return load_checkpoint(str(tiny_checkpoint), device="cpu", dtype="float32").model


@pytest.mark.parametrize("per_expert", [False, True], ids=["fused", "per-expert"])
@pytest.mark.parametrize("fmt", ["fp8", "int4", "nvfp4"])
def test_a_compressed_tensors_checkpoint_loads_quantized(
    tiny_checkpoint, tmp_path, float_model, kernel_device, fmt, per_expert
):
    # the tiny model's sizes (hidden 64, expert intermediate 32) are below int4's group of 128: widen them
    source = tiny_checkpoint if fmt != "int4" else wide_checkpoint(tiny_checkpoint, tmp_path / "wide")
    reference = float_model if fmt != "int4" else load_checkpoint(str(source), device="cpu", dtype="float32").model
    # per expert, the encoder's layers get their own copy too, which must load once, shared with the decoder
    written = write_ct_checkpoint(source, tmp_path / fmt, fmt, per_expert=per_expert, encoder_copy=per_expert)
    loaded = load_checkpoint(str(written), device=str(kernel_device), dtype="float32", use_kernels=True)
    model = loaded.model
    assert expert_formats(model) == {fmt: len(model.model.decoder.layers)}  # no expert stayed in float
    decoder, encoder = model.model.decoder.layers[0], model.model.encoder.language_model.layers[0]
    assert isinstance(decoder.experts, QuantExperts) and encoder.experts is decoder.experts
    assert isinstance(decoder.self_attn.q_proj, QuantLinear)
    assert encoder.self_attn.q_proj is decoder.self_attn.q_proj
    report = resident_bytes(model)
    assert report[fmt] > 0 and set(report) <= {fmt, "float32"}
    assert loaded.resident == report
    kernels = kernel_report(model, graphs=False)
    assert (kernels.experts, kernels.dense) == (f"Triton weight-only MoE ({fmt})", fmt)

    gate_up = decoder.experts.weights()[0]
    from diffusion_copilot.engine.weights.formats import weight_format

    want = reference.model.decoder.layers[0].experts.gate_up_proj.detach()
    got = weight_format(fmt).dequantize(gate_up, torch.float32).cpu()
    row_max = want.abs().amax(-1, keepdim=True)
    assert float(((got - want).abs() / row_max).max()) <= RELATIVE_ERROR[fmt]

    dequantized = load_checkpoint(str(written), device="cpu", dtype="float32", use_kernels=False).model
    assert expert_formats(dequantized) == {"float32": len(model.model.decoder.layers)}
    torch.testing.assert_close(decoder_logits(model).cpu(), decoder_logits(dequantized), rtol=1e-3, atol=1e-3)


def test_nvfp4_gate_and_up_with_their_own_global_scales_load_rescaled(
    tiny_checkpoint, tmp_path, float_model, kernel_device, caplog
):
    written = write_ct_checkpoint(tiny_checkpoint, tmp_path / "nvfp4", "nvfp4", per_expert=True, shared_global=False)
    model = load_checkpoint(str(written), device=str(kernel_device), dtype="float32", use_kernels=True).model
    assert "global scales: rescaled" in caplog.text
    from diffusion_copilot.engine.weights.formats import weight_format

    for layer, want_layer in zip(model.model.decoder.layers, float_model.model.decoder.layers, strict=True):
        got = weight_format("nvfp4").dequantize(layer.experts.weights()[0], torch.float32).cpu()
        want = want_layer.experts.gate_up_proj.detach()
        assert float(((got - want).abs() / want.abs().amax(-1, keepdim=True)).max()) <= RELATIVE_ERROR["nvfp4"]


def test_a_missing_expert_is_one_line(tiny_checkpoint, tmp_path):
    from safetensors.torch import load_file, save_file

    written = write_ct_checkpoint(tiny_checkpoint, tmp_path / "fp8", "fp8", per_expert=True)
    file = written / "model.safetensors"
    save_file({k: v for k, v in load_file(file).items() if ".layers.1.experts.2.up_proj." not in k}, file)
    with pytest.raises(CheckpointError, match=r"layers\.1\.experts: the per-expert weights are incomplete") as err:
        load_checkpoint(str(written), device="cpu")
    assert "\n" not in str(err.value)


def test_an_unsupported_layout_is_one_line(tiny_checkpoint, tmp_path):
    written = write_ct_checkpoint(tiny_checkpoint, tmp_path / "fp8", "fp8")
    config = (written / "config.json").read_text()
    (written / "config.json").write_text(config.replace('"compressed-tensors"', '"gptq"'))
    with pytest.raises(CheckpointError, match="gptq") as err:
        load_checkpoint(str(written), device="cpu")
    assert "\n" not in str(err.value)


def test_memory_planning_counts_each_expert_once_in_either_layout(tiny_checkpoint, tmp_path):
    from diffusion_copilot.engine.weights.weights_plan import checkpoint_sizes

    fused = checkpoint_sizes(write_ct_checkpoint(tiny_checkpoint, tmp_path / "fused", "nvfp4"))
    unfused = write_ct_checkpoint(tiny_checkpoint, tmp_path / "unfused", "nvfp4", per_expert=True, encoder_copy=True)
    model = load_checkpoint(str(tiny_checkpoint), device="cpu").model
    experts = sum(p.numel() for layer in model.model.decoder.layers for p in layer.experts.parameters())
    assert fused.expert_params == checkpoint_sizes(unfused).expert_params == experts
