"""`diffusion-copilot quantize` writes a compressed-tensors checkpoint that load_checkpoint reads back quantized (no
expert left in float) and the engine completes with; --weights picks or refuses formats with one-line errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from diffusion_copilot.engine import CheckpointError, load_checkpoint
from diffusion_copilot.engine.backends.local.engine import Engine
from diffusion_copilot.engine.job import Job
from diffusion_copilot.engine.weights.quantized_model import expert_formats
from diffusion_copilot.engine.weights.weights_plan import CheckpointSizes, choose_weights
from diffusion_copilot.server.cli.main import main

pytest.importorskip("triton")
from small_models import decoder_logits, wide_checkpoint


def test_quantize_then_load_then_complete(tiny_checkpoint: Path, tmp_path: Path, kernel_device, capsys):
    out = tmp_path / "nvfp4"
    assert main(["quantize", str(tiny_checkpoint), str(out), "--weights", "nvfp4", "--dense", "fp8"]) == 0
    assert "quantizing" in capsys.readouterr().err  # the progress bar, on stderr

    loaded = load_checkpoint(str(out), device=str(kernel_device), dtype="float32", use_kernels=True)
    assert expert_formats(loaded.model) == {"nvfp4": len(loaded.model.model.decoder.layers)}
    assert loaded.resident["nvfp4"] > 0 and loaded.resident["fp8"] > 0
    result = Engine(loaded).run(Job(prompt_ids=(2, 40, 51, 77), canvas_length=16, max_steps=4, seed=0))
    assert result.error is None and len(result.canvases) == 1


def test_the_quantized_shards_keep_the_source_permissions(tiny_checkpoint: Path, tmp_path: Path):
    source = Path(shutil.copytree(tiny_checkpoint, tmp_path / "source"))
    for shard in source.glob("*.safetensors"):
        shard.chmod(0o644)  # readable by a vLLM server running as another user
    assert main(["quantize", str(source), str(tmp_path / "int8"), "--weights", "int8"]) == 0
    for shard in source.glob("*.safetensors"):
        assert (tmp_path / "int8" / shard.name).stat().st_mode & 0o777 == 0o644


def test_int4_groups_of_64_where_128_does_not_divide_the_inputs(tiny_checkpoint: Path, tmp_path: Path, kernel_device):
    # The 26B's expert down projection has 704 inputs; here 192: gate/up keep groups of 128, down takes 64, and the
    # config says so in a config group of its own, as compressed-tensors and vLLM read it.
    source = wide_checkpoint(tiny_checkpoint, tmp_path / "wide", moe_intermediate_size=192, seed=3)
    out = tmp_path / "int4"
    assert main(["quantize", str(source), str(out), "--weights", "int4"]) == 0
    groups = json.loads((out / "config.json").read_text())["quantization_config"]["config_groups"].values()
    sizes = {target: group["weights"]["group_size"] for group in groups for target in group["targets"]}
    assert sizes == {r"re:.*\.experts\.\d+\.(gate|up)_proj$": 128, r"re:.*\.experts\.\d+\.down_proj$": 64}
    quantized = load_checkpoint(str(out), device=str(kernel_device), dtype="float32", use_kernels=True).model
    experts = quantized.model.decoder.layers[0].experts
    assert [w.tensors["weight_scale"].shape[-1] for w in experts.weights()] == [1, 3]  # 128 / 128, 192 / 64
    dequantized = load_checkpoint(str(out), device="cpu", dtype="float32", use_kernels=False).model
    torch.testing.assert_close(decoder_logits(quantized).cpu(), decoder_logits(dequantized), rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("fmt", ["fp8", "int4", "nvfp4"])
def test_compressed_tensors_reads_what_quantize_writes(tiny_checkpoint: Path, tmp_path: Path, fmt: str):
    # The layout LLM Compressor saves and vLLM reads: a linear per expert and projection. The library matches each
    # written module to exactly one config group, and its own decompression of the module equals the engine's
    # loaded weight at that expert and those rows.
    from compressed_tensors.compressors import BaseCompressor
    from compressed_tensors.quantization import QuantizationConfig
    from compressed_tensors.utils import match_name
    from safetensors.torch import load_file

    source = wide_checkpoint(tiny_checkpoint, tmp_path / "wide", moe_intermediate_size=192, seed=3)
    out = tmp_path / fmt
    assert main(["quantize", str(source), str(out), "--weights", fmt, "--dense", "fp8"]) == 0
    config = QuantizationConfig.model_validate(json.loads((out / "config.json").read_text())["quantization_config"])
    tensors = {k: v for file in out.glob("*.safetensors") for k, v in load_file(file).items()}
    modules = {key.rpartition(".")[0] for key in tensors if key.endswith(".weight_scale")}
    assert not any(m.endswith((".experts.gate_up_proj", ".experts.down_proj")) for m in modules)
    model = load_checkpoint(str(out), device="cpu", dtype="float32", use_kernels=False).model
    expert_modules = [m for m in modules if ".experts." in m]
    assert len(expert_modules) == 3 * model.config.text_config.num_experts * len(model.model.decoder.layers)
    for module in sorted(modules):
        groups = [g for g in config.config_groups.values() if any(match_name(module, t) for t in g.targets)]
        assert len(groups) == 1, module
        prefix = module + "."
        state = {key.removeprefix(prefix): t for key, t in tensors.items() if key.startswith(prefix)}
        compressor = BaseCompressor.get_value_from_registry(groups[0].format)
        theirs = compressor.decompress(state, groups[0])["weight"]  # NVFP4: computed in bfloat16
        torch.testing.assert_close(theirs, _loaded_weight(model, module).to(theirs.dtype))


def _loaded_weight(model, module: str) -> torch.Tensor:
    """The float weight the engine loaded for a checkpoint module (a per-expert linear: its expert and rows)."""
    parent, _, proj = module.rpartition(".")
    experts, _, index = parent.rpartition(".")
    if not experts.endswith(".experts"):
        return model.get_submodule(module).weight.detach()
    fused = model.get_submodule(experts)
    if proj == "down_proj":
        return fused.down_proj[int(index)].detach()
    half = fused.gate_up_proj.shape[1] // 2
    rows = slice(0, half) if proj == "gate_proj" else slice(half, None)
    return fused.gate_up_proj[int(index), rows].detach()


def test_quantize_refuses_a_quantized_source_in_one_line(tiny_checkpoint: Path, tmp_path: Path, capsys):
    out = tmp_path / "fp8"
    assert main(["quantize", str(tiny_checkpoint), str(out), "--weights", "fp8"]) == 0
    assert main(["quantize", str(out), str(tmp_path / "again"), "--weights", "int4"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "already quantized" in err


def test_auto_picks_by_free_memory_and_an_explicit_choice_that_cannot_fit_fails():
    sizes = CheckpointSizes(expert_params=22_800_000_000, other_params=3_000_000_000, file_bytes=0)
    gib = 1 << 30
    assert choose_weights("auto", "bf16", sizes, 80 * gib).experts == "bf16"
    assert choose_weights("auto", "bf16", sizes, 32 * gib).experts == "fp8"
    assert choose_weights("auto", "bf16", sizes, 24 * gib).experts == "int4"
    assert choose_weights("auto", "int4", sizes, 80 * gib).experts == "int4"  # a quantized checkpoint stays so
    assert choose_weights("auto", "nvfp4", sizes, None).experts == "nvfp4"  # the CPU: the checkpoint's own
    with pytest.raises(ValueError, match=r"needs 55\.9 GB .* 25\.8 GB is free"):
        choose_weights("bf16", "bf16", sizes, 24 * gib)
    with pytest.raises(ValueError, match="needs a bf16 checkpoint"):
        choose_weights("fp8", "int4", sizes, 80 * gib)


def test_an_unknown_weights_choice_is_a_checkpoint_error(tiny_checkpoint: Path):
    with pytest.raises(CheckpointError, match="unknown --weights"):
        load_checkpoint(str(tiny_checkpoint), device="cpu", weights="int3")
