"""Checkpoints in the compressed-tensors layout (LLM Compressor's and vLLM's): which tensors a quantized weight is
stored as on disk, the `quantization_config` that says so, and loading such a checkpoint into a model whose experts
and linears stay quantized (QuantExperts, QuantLinear) or are dequantized at load (the CPU, which has no Triton).

Read directly with safetensors: the layout is a few named tensors per weight. A quantized module `M` is stored as
`M.weight` (fp8 / int8, scale `M.weight_scale` [out, 1]), or `M.weight_packed` (int4: int32, 8 values a word,
scale per group; NVFP4: uint8, e4m3 scale per 16 and `M.weight_global_scale`). A fused 3-D expert parameter
`...experts.gate_up_proj` [experts, out, in] is stored as the module `...experts.gate_up_proj` with an expert dim
in front of every tensor (NVFP4: one global scale per expert).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch

from .formats import QuantizedWeight, weight_format

log = logging.getLogger(__name__)

QUANT_METHOD = "compressed-tensors"
EXPERT_PARAMS = ("gate_up_proj", "down_proj")
_SUFFIXES = ("weight_packed", "weight_scale", "weight_global_scale", "weight_shape", "weight_zero_point")
_IGNORED = ("weight_shape", "input_scale", "input_global_scale")  # activation scales: weights-only here


class CompressedError(ValueError):
    """The checkpoint's compressed-tensors layout is not one this engine reads; the message says which part."""


def quantization_method(config: dict[str, Any]) -> str | None:
    """The checkpoint's `quantization_config.quant_method`, or None for a plain checkpoint."""
    qc = config.get("quantization_config")
    return str(qc.get("quant_method")) if isinstance(qc, dict) else None


def on_disk(q: QuantizedWeight) -> dict[str, torch.Tensor]:
    """The tensors compressed-tensors stores for `q` (names relative to the module)."""
    t = dict(q.tensors)
    if q.format == "int4":
        packed = t["weight_packed"]
        t["weight_packed"] = packed.contiguous().view(torch.int32)  # 8 nibbles a little-endian word
        t["weight_shape"] = torch.tensor(q.shape[-2:], dtype=torch.int64)
    return t


def from_disk(tensors: dict[str, torch.Tensor], name: str) -> QuantizedWeight:
    """The QuantizedWeight of a module's on-disk tensors, its format told by what they are."""
    t = {k: v for k, v in tensors.items() if k not in _IGNORED}
    if "weight_zero_point" in t:
        raise CompressedError(f"{name} is asymmetric (has a zero point): only symmetric weights are supported")
    packed, scale = t.get("weight_packed"), t.get("weight_scale")
    if scale is None:
        raise CompressedError(f"{name} has no weight_scale")
    if packed is not None and "weight_global_scale" in t:
        fmt = "nvfp4"
        experts = tuple(packed.shape[:-2])
        count = int(torch.tensor(experts).prod()) if experts else 1
        g = t["weight_global_scale"].float().reshape(-1)  # one per tensor, or one per expert
        t["weight_global_scale"] = g.expand(count).reshape(*experts, 1).contiguous()
        in_features = packed.shape[-1] * 2
    elif packed is not None and packed.dtype == torch.int32:
        fmt = "int4"
        in_features = packed.shape[-1] * 8
        if in_features % scale.shape[-1] or in_features // scale.shape[-1] not in (32, 64, 128):
            raise CompressedError(f"{name}: int4 with groups other than 32, 64 or 128 inputs is not supported")
        t["weight_packed"] = packed.contiguous().view(torch.uint8)
    elif "weight" in t and t["weight"].dtype in (torch.float8_e4m3fn, torch.int8):
        fmt = "fp8" if t["weight"].dtype == torch.float8_e4m3fn else "int8"
        if scale.shape[-1] != 1:
            raise CompressedError(f"{name}: {fmt} with block scales is not supported, only one per channel")
        t["weight_scale"] = scale.float()
        in_features = t["weight"].shape[-1]
    else:
        found = ", ".join(f"{k} {v.dtype}" for k, v in t.items())
        raise CompressedError(f"{name} is in a quantized layout this engine does not read ({found})")
    weight = t.get("weight_packed", t.get("weight"))
    assert weight is not None
    return QuantizedWeight(fmt, t, (*weight.shape[:-1], in_features))


def compressed_config(
    experts: str, dense: str, targets: dict[str, list[str]], group_sizes: dict[str, int] | None = None
) -> dict[str, Any]:
    """The `quantization_config` of a checkpoint with `experts` and `dense` formats; targets: format -> module
    regexes ("re:..."); group_sizes: a target's int4 group where it is not the format's own (its own config group).
    Weight-only schemes as LLM Compressor writes them."""
    sizes = group_sizes or {}
    schemes: list[tuple[str, list[str], int | None]] = []
    for fmt, modules in sorted(targets.items()):
        schemes.append((fmt, [m for m in modules if m not in sizes], None))
        schemes.extend((fmt, [m], sizes[m]) for m in modules if m in sizes)
    groups: dict[str, Any] = {}
    for fmt, modules, size in (scheme for scheme in schemes if scheme[1]):
        weights = _weight_args(fmt) | ({"group_size": size} if size else {})
        groups[f"group_{len(groups)}"] = {"targets": modules, "weights": weights, "format": _FORMAT_NAMES[fmt]}
    used = {f for f in (experts, dense) if f != "bf16"}
    return {
        "quant_method": QUANT_METHOD,
        "format": _FORMAT_NAMES[next(iter(used))] if len(used) == 1 else "mixed-precision",
        "quantization_status": "compressed",
        "config_groups": groups,
        "ignore": ["lm_head"],
    }


_FORMAT_NAMES = {
    "fp8": "float-quantized",
    "int8": "int-quantized",
    "int4": "pack-quantized",
    "nvfp4": "nvfp4-pack-quantized",
}


def _weight_args(fmt: str) -> dict[str, Any]:
    common = {"symmetric": True, "dynamic": False, "observer": "minmax"}
    return {
        "fp8": {"num_bits": 8, "type": "float", "strategy": "channel", **common},
        "int8": {"num_bits": 8, "type": "int", "strategy": "channel", **common},
        "int4": {"num_bits": 4, "type": "int", "strategy": "group", "group_size": 128, **common},
        "nvfp4": {"num_bits": 4, "type": "float", "strategy": "tensor_group", "group_size": 16, **common},
    }[fmt]


def read_compressed(
    files: list[Path], device: torch.device, dtype: torch.dtype
) -> tuple[dict[str, torch.Tensor], dict[str, QuantizedWeight]]:
    """(plain tensors in `dtype` where floating, quantized weights by module name), read file by file onto `device`."""
    from safetensors import safe_open

    names: set[str] = set()
    for file in files:
        with safe_open(str(file), framework="pt") as f:
            names.update(f.keys())
    plain: dict[str, torch.Tensor] = {}
    parts: dict[str, dict[str, torch.Tensor]] = defaultdict(dict)
    for file in files:  # one file at a time: the peak is one shard beside what is already placed
        with safe_open(str(file), framework="pt", device=str(device)) as f:
            for key in f.keys():  # noqa: SIM118 (safe_open is not a mapping)
                module, _, suffix = key.rpartition(".")
                if suffix in _SUFFIXES or (suffix == "weight" and f"{module}.weight_scale" in names):
                    parts[module][suffix] = f.get_tensor(key)
                elif suffix not in _IGNORED:
                    tensor = f.get_tensor(key)
                    plain[key] = tensor.to(dtype) if tensor.is_floating_point() else tensor
    quantized = {module: from_disk(tensors, module) for module, tensors in parts.items()}
    return plain, quantized


def dequantized(q: QuantizedWeight, dtype: torch.dtype) -> torch.Tensor:
    return weight_format(q.format).dequantize(q, dtype)


def checkpoint_format(config: dict[str, Any]) -> str:
    """The weight format a compressed-tensors config names (its experts' group first), bf16 for a plain one."""
    qc = config.get("quantization_config")
    if not isinstance(qc, dict):
        return "bf16"
    by_name = {v: k for k, v in _FORMAT_NAMES.items()} | {"naive-quantized": "int8"}
    groups = [g for g in (qc.get("config_groups") or {}).values() if isinstance(g, dict)]
    groups.sort(key=lambda g: not any("expert" in str(t) for t in g.get("targets", [])))
    for name in [g.get("format") for g in groups] + [qc.get("format")]:
        if name in by_name:
            return by_name[name]
    raise CompressedError(f"compressed-tensors format {qc.get('format')!r} is not one this engine reads")
