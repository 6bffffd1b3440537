"""Small compressed-tensors checkpoints of our model class, written by the compressed-tensors library itself: its
calculate_qparams / generate_gparam make the scales, its compressors quantize and pack, its ModelCompressor writes
the quantization_config. Fused 3-D expert parameters are compressed either as modules named after the parameter, or
as LLM Compressor saves them after unfusing: a linear per expert and projection (`experts.{i}.gate_proj`, `up_proj`,
`down_proj`), gate and up of an NVFP4 expert sharing the smaller global scale as its fused-layer update sets it."""

from __future__ import annotations

import shutil
from functools import partial
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

PRESETS = {"fp8": "FP8_DYNAMIC", "int4": "W4A16", "nvfp4": "NVFP4A16"}
DECODER, ENCODER = "model.decoder.layers.", "model.encoder.language_model.layers."
DENSE = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def _targets(name: str, tensor: torch.Tensor) -> bool:
    if name.endswith((".experts.gate_up_proj", ".experts.down_proj")):
        return True
    return name.startswith("model.decoder.") and name.endswith(tuple(f"{p}.weight" for p in DENSE))


def write_ct_checkpoint(
    source: Path, out: Path, fmt: str, per_expert: bool = False, encoder_copy: bool = False, shared_global: bool = True
) -> Path:
    """Copy the float checkpoint `source` to `out` with its experts and dense linears compressed to `fmt`, experts as
    one module per parameter or (`per_expert`) a linear per expert; `encoder_copy` also writes the encoder layers'
    copy of each per-expert linear (unfused copies are no longer tied to the decoder's); `shared_global=False` gives
    an NVFP4 expert's gate and up a global scale each."""
    from compressed_tensors.compressors import BaseCompressor, ModelCompressor
    from compressed_tensors.quantization import QuantizationConfig, preset_name_to_scheme

    shutil.copytree(source, out)
    scheme = preset_name_to_scheme(PRESETS[fmt], ["re:.*experts.*", "re:.*_proj$"])
    ct_format = {"fp8": "float-quantized", "int4": "pack-quantized", "nvfp4": "nvfp4-pack-quantized"}[fmt]
    compress = partial(_compress, scheme=scheme, compressor=BaseCompressor.get_value_from_registry(ct_format))
    tensors = {}
    for file in out.glob("*.safetensors"):
        for name, weight in load_file(file).items():
            if not _targets(name, weight):
                tensors[name] = weight
                continue
            module = name.removesuffix(".weight")
            if not (per_expert and weight.dim() == 3):
                tensors.update({f"{module}.{key}": t for key, t in compress(weight).items()})
                continue
            for piece, (value, fused) in _per_expert(module, weight).items():
                compressed = compress(value, global_range=fused if shared_global else value)
                for key, tensor in compressed.items():
                    tensors[f"{piece}.{key}"] = tensor
                    if encoder_copy:
                        tensors[f"{ENCODER}{piece.removeprefix(DECODER)}.{key}"] = tensor.clone()
        file.unlink()
    save_file(tensors, out / "model.safetensors")
    config = QuantizationConfig(config_groups={"group_0": scheme}, format=ct_format, ignore=["lm_head"])
    ModelCompressor(quantization_config=config).update_config(str(out))
    return out


def _per_expert(module: str, weight: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """A fused expert parameter as LLM Compressor's per-expert linears: name -> (weight, the expert's fused weight,
    whose range sets an NVFP4 global scale that gate and up share)."""
    experts, _, param = module.rpartition(".")
    if param == "down_proj":
        return {f"{experts}.{i}.down_proj": (w, w) for i, w in enumerate(weight)}
    half = weight.shape[1] // 2
    pieces = {}
    for i, w in enumerate(weight):
        pieces[f"{experts}.{i}.gate_proj"], pieces[f"{experts}.{i}.up_proj"] = (w[:half], w), (w[half:], w)
    return pieces


def _compress(weight, scheme, compressor, global_range=None):
    """The library's compress of a 2-D weight, or of each expert of a 3-D one, stacked."""
    from compressed_tensors.quantization.utils import calculate_qparams, generate_gparam

    if weight.dim() == 3:
        parts = [_compress(w, scheme, compressor) for w in weight]
        return {key: torch.stack([p[key] for p in parts]) for key in parts[0]}
    args = scheme.weights
    state = {"weight": weight}
    if args.group_size:
        grouped = weight.reshape(weight.shape[0], -1, args.group_size)
        low, high = grouped.amin(-1), grouped.amax(-1)
    else:
        low, high = weight.amin(-1, keepdim=True), weight.amax(-1, keepdim=True)
    global_scale = None
    if args.strategy == "tensor_group":
        source = weight if global_range is None else global_range
        global_scale = generate_gparam(source.min(), source.max())
        state["weight_global_scale"] = global_scale
    scale, _ = calculate_qparams(low, high, args, global_scale=global_scale)
    state["weight_scale"] = scale.float() if scale.dtype == torch.float8_e4m3fn else scale
    return dict(compressor.compress(state, scheme))
