"""Small compressed-tensors checkpoints of our model class, written by the compressed-tensors library itself: its
calculate_qparams / generate_gparam make the scales, its compressors quantize and pack, its ModelCompressor writes
the quantization_config. Fused 3-D expert parameters are compressed as modules named after the parameter."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

PRESETS = {"fp8": "FP8_DYNAMIC", "int4": "W4A16", "nvfp4": "NVFP4A16"}
DENSE = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def _targets(name: str, tensor: torch.Tensor) -> bool:
    if name.endswith((".experts.gate_up_proj", ".experts.down_proj")):
        return True
    return name.startswith("model.decoder.") and name.endswith(tuple(f"{p}.weight" for p in DENSE))


def write_ct_checkpoint(source: Path, out: Path, fmt: str) -> Path:
    """Copy the float checkpoint `source` to `out` with its experts and dense linears compressed to `fmt`."""
    from compressed_tensors.compressors import BaseCompressor, ModelCompressor
    from compressed_tensors.quantization import QuantizationConfig, preset_name_to_scheme
    from compressed_tensors.quantization.utils import calculate_qparams, generate_gparam

    shutil.copytree(source, out)
    scheme = preset_name_to_scheme(PRESETS[fmt], ["re:.*experts.*", "re:.*_proj$"])
    args = scheme.weights
    ct_format = {"fp8": "float-quantized", "int4": "pack-quantized", "nvfp4": "nvfp4-pack-quantized"}[fmt]
    compressor = BaseCompressor.get_value_from_registry(ct_format)
    tensors = {}
    for file in out.glob("*.safetensors"):
        for name, weight in load_file(file).items():
            if not _targets(name, weight):
                tensors[name] = weight
                continue
            module = name.removesuffix(".weight")
            for key, value in _compress_stacked(
                weight, args, compressor, scheme, calculate_qparams, generate_gparam
            ).items():
                tensors[f"{module}.{key}"] = value
        file.unlink()
    save_file(tensors, out / "model.safetensors")
    config = QuantizationConfig(config_groups={"group_0": scheme}, format=ct_format, ignore=["lm_head"])
    ModelCompressor(quantization_config=config).update_config(str(out))
    return out


def _compress_stacked(weight, args, compressor, scheme, calculate_qparams, generate_gparam):
    """The library's compress of a 2-D weight, or of each expert of a 3-D one, stacked."""
    if weight.dim() == 3:
        parts = [_compress_stacked(w, args, compressor, scheme, calculate_qparams, generate_gparam) for w in weight]
        return {key: torch.stack([p[key] for p in parts]) for key in parts[0]}
    state = {"weight": weight}
    if args.group_size:
        grouped = weight.reshape(weight.shape[0], -1, args.group_size)
        low, high = grouped.amin(-1), grouped.amax(-1)
    else:
        low, high = weight.amin(-1, keepdim=True), weight.amax(-1, keepdim=True)
    global_scale = None
    if _needs_global_scale(args):
        global_scale = generate_gparam(weight.min(), weight.max())
        state["weight_global_scale"] = global_scale
    scale, _ = calculate_qparams(low, high, args, global_scale=global_scale)
    state["weight_scale"] = scale.float() if scale.dtype == torch.float8_e4m3fn else scale
    return dict(compressor.compress(state, scheme))


def _needs_global_scale(args) -> bool:
    return args.strategy == "tensor_group"
