"""Checkpoints in the compressed-tensors layout (LLM Compressor's and vLLM's): which tensors a quantized weight is
stored as on disk, the `quantization_config` that says so, and loading such a checkpoint into a model whose experts
and linears stay quantized (QuantExperts, QuantLinear) or are dequantized at load (the CPU, which has no Triton).

Read directly with safetensors: the layout is a few named tensors per weight. A quantized module `M` is stored as
`M.weight` (fp8 / int8, scale `M.weight_scale` [out, 1]), or `M.weight_packed` (int4: int32, 8 values a word,
scale per group; NVFP4: uint8, e4m3 scale per 16 and `M.weight_global_scale`).

The model's experts are fused 3-D parameters, `...experts.gate_up_proj` [experts, 2 * inter, hidden] and
`...experts.down_proj` [experts, hidden, inter]. LLM Compressor unfuses them into a linear per expert and
projection before it quantizes, and saves them so (for vLLM): `...experts.{i}.gate_proj`, `.up_proj` and
`.down_proj`. That is the layout of the published checkpoints, and `quantize` writes it too. Loading stacks them
back (`fuse_per_expert`). A checkpoint that stores the fused parameter itself as one module, with an expert dim in
front of every tensor, loads as well.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from collections.abc import Container
from pathlib import Path
from typing import Any

import torch

from .formats import FP8, QuantizedWeight, weight_format

log = logging.getLogger(__name__)

QUANT_METHOD = "compressed-tensors"
EXPERT_PARAMS = ("gate_up_proj", "down_proj")
_SUFFIXES = ("weight_packed", "weight_scale", "weight_global_scale", "weight_shape", "weight_zero_point")
_IGNORED = ("weight_shape", "input_scale", "input_global_scale")  # activation scales: weights-only here
DECODER_LAYERS, ENCODER_LAYERS = "model.decoder.layers.", "model.encoder.language_model.layers."
_PER_EXPERT = re.compile(r"(?P<experts>.+\.experts)\.(?P<index>\d+)\.(?P<proj>gate_proj|up_proj|down_proj)$")
_PROJECTIONS = ("gate_proj", "up_proj", "down_proj")


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
                is_quantized = suffix in _SUFFIXES or (suffix == "weight" and f"{module}.weight_scale" in names)
                if encoder_copy(key, names) and (is_quantized or ".experts." in key):
                    continue  # the decoder's twin is read instead: never both on the device
                if is_quantized:
                    parts[module][suffix] = f.get_tensor(key)
                elif suffix not in _IGNORED:
                    tensor = f.get_tensor(key)
                    plain[key] = tensor.to(dtype) if tensor.is_floating_point() else tensor
    quantized = {module: from_disk(tensors, module) for module, tensors in parts.items()}
    fuse_per_expert(plain, quantized)
    return plain, quantized


def encoder_copy(key: str, names: Container[str]) -> bool:
    """Whether `key` is an encoder layer's copy of a decoder layer tensor that the checkpoint also holds. The model
    ties their weights; a checkpoint whose experts were unfused may hold both copies (unfused, they are no longer
    tied). Untied buffers (`layer_scalar`) are not weights: the caller keeps those."""
    return key.startswith(ENCODER_LAYERS) and DECODER_LAYERS + key.removeprefix(ENCODER_LAYERS) in names


def per_expert(name: str, q: QuantizedWeight) -> dict[str, QuantizedWeight]:
    """The per-expert modules LLM Compressor would save for the fused expert parameter `name` (`...experts.gate_up_proj`
    or `...experts.down_proj`) quantized as `q`: `...experts.{i}.gate_proj` and `.up_proj`, or `.down_proj`.
    An NVFP4 expert's gate and up keep the one global scale they were quantized with, as LLM Compressor gives them."""
    experts, _, param = name.rpartition(".")
    count, rows = q.shape[0], q.shape[1]
    halves = {"gate_proj": slice(0, rows // 2), "up_proj": slice(rows // 2, rows)}
    parts = halves if param == "gate_up_proj" else {"down_proj": slice(0, rows)}
    return {f"{experts}.{i}.{proj}": _rows(q, i, span) for i in range(count) for proj, span in parts.items()}


def fuse_per_expert(plain: dict[str, torch.Tensor], quantized: dict[str, QuantizedWeight]) -> None:
    """Stack per-expert linears (`...experts.{i}.gate_proj` / `up_proj` / `down_proj`, quantized or plain) back into
    the model's fused `...experts.gate_up_proj` and `...experts.down_proj`, in place."""
    found: dict[str, dict[str, dict[int, Any]]] = defaultdict(lambda: defaultdict(dict))
    for name in list(quantized):
        if match := _PER_EXPERT.match(name):
            found[match["experts"]][match["proj"]][int(match["index"])] = quantized.pop(name)
    for key in list(plain):
        if key.endswith(".weight") and (match := _PER_EXPERT.match(key.removesuffix(".weight"))):
            found[match["experts"]][match["proj"]][int(match["index"])] = plain.pop(key)
    for experts in list(found):  # one layer at a time, its pieces let go once stacked: the peak is one layer more
        by_proj = found.pop(experts)
        gate, up, down = (by_proj.get(proj, {}) for proj in _PROJECTIONS)
        count = len(down)
        if not count or any(sorted(p) != list(range(count)) for p in (gate, up, down)):
            sizes = ", ".join(f"{proj} {len(by_proj.get(proj, {}))}" for proj in _PROJECTIONS)
            raise CompressedError(f"{experts}: the per-expert weights are incomplete ({sizes})")
        kinds = {type(w) for p in (gate, up, down) for w in p.values()}
        if len(kinds) > 1:
            raise CompressedError(f"{experts}: some experts are quantized and some are not")
        gate_up, rescaled = zip(*(_joined(gate[i], up[i], f"{experts}.{i}") for i in range(count)), strict=True)
        if any(rescaled):
            log.warning("%s: %d experts' gate and up had two NVFP4 global scales: rescaled", experts, sum(rescaled))
        downs = [down[i] for i in range(count)]
        for param, weights in (("gate_up_proj", list(gate_up)), ("down_proj", downs)):
            if kinds == {QuantizedWeight}:
                quantized[f"{experts}.{param}"] = _stacked(weights, f"{experts}.{param}")
            else:
                plain[f"{experts}.{param}"] = torch.stack(weights)


def _rows(q: QuantizedWeight, expert: int, rows: slice) -> QuantizedWeight:
    """Expert `expert`'s output rows `rows` of a fused quantized expert weight."""
    tensors = {}
    for key, t in q.tensors.items():
        piece = t[expert] if key == "weight_global_scale" else t[expert, rows]
        tensors[key] = piece.clone(memory_format=torch.contiguous_format)  # its own storage, saved on its own
    return QuantizedWeight(q.format, tensors, (rows.stop - rows.start, q.shape[-1]))


def _joined(gate: Any, up: Any, name: str) -> tuple[Any, bool]:
    """One expert's gate and up weights as its fused gate_up (gate rows first, as the model has them), and whether
    NVFP4 block scales had to be rescaled to one global scale (LLM Compressor gives gate and up the same one)."""
    if isinstance(gate, torch.Tensor):
        return torch.cat((gate, up)), False
    if gate.format != up.format or gate.shape[1:] != up.shape[1:]:
        raise CompressedError(f"{name}: gate_proj and up_proj differ in format or shape")
    parts, rescaled = [dict(gate.tensors), dict(up.tensors)], False
    if gate.format == "nvfp4":  # one global scale for the fused weight: the smaller, so no block scale grows
        shared = torch.minimum(parts[0]["weight_global_scale"], parts[1]["weight_global_scale"])
        for part in parts:
            if not torch.equal(part["weight_global_scale"], shared):
                rescaled, ratio = True, shared / part["weight_global_scale"]
                part["weight_scale"] = (part["weight_scale"].float() * ratio).to(FP8)
            part["weight_global_scale"] = shared
    tensors = {key: torch.cat((parts[0][key], parts[1][key])) for key in parts[0] if key != "weight_global_scale"}
    if "weight_global_scale" in parts[0]:
        tensors["weight_global_scale"] = parts[0]["weight_global_scale"]
    return QuantizedWeight(gate.format, tensors, (gate.shape[0] + up.shape[0], gate.shape[1])), rescaled


def _stacked(weights: list[QuantizedWeight], name: str) -> QuantizedWeight:
    """Per-expert quantized weights as one with an expert dim in front of every tensor."""
    first = weights[0]
    if any(w.format != first.format or w.shape != first.shape for w in weights):
        raise CompressedError(f"{name}: the experts differ in format or shape")
    tensors = {key: torch.stack([w.tensors[key] for w in weights]) for key in first.tensors}
    return QuantizedWeight(first.format, tensors, (len(weights), *first.shape))


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
