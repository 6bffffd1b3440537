"""A DiffusionGemma model with quantized weights: built from a compressed-tensors checkpoint, or quantized in place
from a loaded model; and the report of the bytes each weight format keeps resident. Experts are the fused 3-D
parameters the linear-only quantizers miss, so they are found by name here and checked after every load.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..kernels.quant_moe import QuantExperts, QuantLinear
from .compressed import DECODER_LAYERS, ENCODER_LAYERS, CompressedError, dequantized, read_compressed
from .formats import QuantizedWeight, weight_format

DENSE_LINEARS = (
    "self_attn.q_proj",
    "self_attn.k_proj",
    "self_attn.v_proj",
    "self_attn.o_proj",
    "mlp.gate_proj",
    "mlp.up_proj",
    "mlp.down_proj",
)
SELF_CONDITIONING = ("gate_proj", "up_proj", "down_proj")


def build_compressed(directory: Path, device: torch.device, dtype: torch.dtype, use_kernels: bool) -> Any:
    """The model of a compressed-tensors checkpoint: quantized experts and linears as QuantExperts / QuantLinear
    when `use_kernels` (Triton), else dequantized to `dtype` into the stock modules."""
    from accelerate import init_empty_weights
    from transformers import AutoConfig, DiffusionGemmaForBlockDiffusion
    from transformers.models.diffusion_gemma.generation_diffusion_gemma import DiffusionGemmaGenerationConfig

    config = AutoConfig.from_pretrained(directory)
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # this module applies it; transformers' own quantizer must not
    config.dtype = dtype
    with init_empty_weights():
        model = DiffusionGemmaForBlockDiffusion(config)
    if (directory / "generation_config.json").is_file():
        model.generation_config = DiffusionGemmaGenerationConfig.from_pretrained(directory)
    plain, quantized = read_compressed(sorted(directory.glob("*.safetensors")), device, dtype)
    if "lm_head.weight" not in plain and config.tie_word_embeddings:
        plain.pop("lm_head.weight", None)
    model.load_state_dict(plain, strict=False, assign=True)
    model.tie_weights()
    for name, q in quantized.items():
        if not use_kernels:
            _assign_dense(model, name, dequantized(q, dtype))
    if use_kernels:
        install_quantized(model, quantized)
    missing = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.device.type == "meta"]
    if missing:
        raise CompressedError(f"{len(missing)} weights are missing from the checkpoint (first: {missing[0]})")
    return model.to(device).eval()


def install_quantized(model: Any, quantized: dict[str, QuantizedWeight]) -> int:
    """Swap the modules of `quantized` (names as in the checkpoint: decoder layers, self-conditioning) for
    QuantExperts / QuantLinear, the encoder's tied twin of each decoder layer module sharing it. Returns the count."""
    done = 0
    for name, q in quantized.items():
        if name.endswith(".experts.gate_up_proj"):
            experts = name.removesuffix(".gate_up_proj")
            down = quantized.get(f"{experts}.down_proj")
            if down is None or down.format != q.format:
                raise CompressedError(f"{experts}: gate_up_proj is {q.format} but down_proj is not")
            _set_shared(model, experts, QuantExperts(q, down))
        elif name.endswith(".experts.down_proj"):
            continue
        else:
            _set_shared(model, name, QuantLinear(q))
        done += 1
    return done


def quantize_in_place(model: Any, experts: str, dense: str, device: torch.device | None = None) -> int:
    """Quantize a loaded model's experts to `experts` and its dense linears to `dense` (bf16: left alone), one
    layer at a time so the float copy of one layer is the peak. Returns how many modules were swapped."""
    count = 0
    pending: dict[str, QuantizedWeight] = {}
    for name, weight in quantizable_weights(model, experts, dense):
        fmt = experts if name.endswith(EXPERT_NAMES) else dense
        pending[name] = weight_format(fmt).quantize(weight.detach().to(device or weight.device))
        if not name.endswith(".experts.gate_up_proj"):  # gate_up waits for its down_proj
            count += install_quantized(model, pending)
            pending = {}
    return count


EXPERT_NAMES = (".experts.gate_up_proj", ".experts.down_proj")


def quantizable_weights(model: Any, experts: str, dense: str) -> Iterator[tuple[str, torch.Tensor]]:
    """(checkpoint name, weight) of each weight that `experts` / `dense` formats quantize, the decoder's copy
    (the encoder's layers share it)."""
    for index, layer in enumerate(model.model.decoder.layers):
        prefix = f"{DECODER_LAYERS}{index}."
        if experts != "bf16" and hasattr(layer.experts, "gate_up_proj"):
            yield prefix + "experts.gate_up_proj", layer.experts.gate_up_proj
            yield prefix + "experts.down_proj", layer.experts.down_proj
        if dense != "bf16":
            for path in DENSE_LINEARS:
                linear = layer.get_submodule(path)
                if isinstance(linear, nn.Linear) and linear.bias is None:
                    yield prefix + path, linear.weight
    if dense != "bf16":
        for path in SELF_CONDITIONING:
            linear = model.model.decoder.self_conditioning.get_submodule(path)
            if isinstance(linear, nn.Linear):
                yield f"model.decoder.self_conditioning.{path}", linear.weight


def resident_bytes(model: Any) -> dict[str, int]:
    """Bytes on the device by weight format: quantized modules under their format, every other parameter under its
    dtype (tied tensors counted once)."""
    totals: Counter[str] = Counter()
    seen: set[int] = set()
    for module in model.modules():
        if isinstance(module, QuantExperts | QuantLinear):
            tensors, label = list(module.buffers(recurse=False)), module.format
        else:
            tensors, label = list(module.parameters(recurse=False)), ""
        for tensor in tensors:
            if id(tensor) not in seen:
                seen.add(id(tensor))
                totals[label or str(tensor.dtype).removeprefix("torch.")] += tensor.numel() * tensor.element_size()
    return dict(totals)


def expert_formats(model: Any) -> Counter[str]:
    """How many experts modules hold each format (a stock module counts as its weights' dtype)."""
    found: Counter[str] = Counter()
    for layer in model.model.decoder.layers:
        experts = layer.experts
        if isinstance(experts, QuantExperts):
            found[experts.format] += 1
        else:
            weight = getattr(experts, "gate_up_proj", None)
            if weight is None:
                weight = getattr(experts, "gate_up_weight", None)
            found["bf16" if weight is None else str(weight.dtype).removeprefix("torch.")] += 1
    return found


def _set_shared(model: Any, name: str, module: nn.Module) -> None:
    """Put `module` at `name` and, for a decoder layer module, at the encoder layer tied to it."""
    _set(model, name, module)
    if name.startswith(DECODER_LAYERS):
        _set(model, ENCODER_LAYERS + name.removeprefix(DECODER_LAYERS), module)


def _set(model: Any, name: str, module: nn.Module) -> None:
    parent, _, attr = name.rpartition(".")
    try:
        setattr(model.get_submodule(parent), attr, module)
    except AttributeError as err:
        raise CompressedError(f"the checkpoint quantizes {name}, which this model does not have") from err


def _assign_dense(model: Any, name: str, weight: torch.Tensor) -> None:
    """Put a dequantized weight back as the stock parameter (`name.weight` of a linear, or the expert parameter)."""
    parent_name, _, attr = name.rpartition(".")
    try:
        parent = model.get_submodule(name if not name.endswith(EXPERT_NAMES) else parent_name)
    except AttributeError as err:
        raise CompressedError(f"the checkpoint quantizes {name}, which this model does not have") from err
    key = "weight" if not name.endswith(EXPERT_NAMES) else attr
    parameter = nn.Parameter(weight, requires_grad=False)
    setattr(parent, key, parameter)
    if name.startswith(DECODER_LAYERS):
        twin = ENCODER_LAYERS + name.removeprefix(DECODER_LAYERS)
        twin_parent = model.get_submodule(twin if not name.endswith(EXPERT_NAMES) else twin.rpartition(".")[0])
        setattr(twin_parent, key, parameter)
