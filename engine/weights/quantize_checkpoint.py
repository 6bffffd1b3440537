"""`diffusion-copilot quantize`: a bf16 checkpoint to the compressed-tensors layout, one safetensors shard at a time
(peak host memory ≈ one shard and its output), round-to-nearest, progress on stderr. The experts are the fused 3-D
parameters that linear-only quantizers skip; they are quantized here by name (the result is checked for it) and
written as a linear per expert and projection, the layout LLM Compressor saves (it unfuses experts for vLLM).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from .checkpoint import CheckpointError, checkpoint_dir, read_config
from .compressed import compressed_config, on_disk, per_expert, quantization_method
from .formats import weight_format

EXPERT_SUFFIXES = (".experts.gate_up_proj", ".experts.down_proj")
DENSE_SUFFIXES = tuple(
    f".{p}.weight" for p in ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
)


def target_format(name: str, experts: str, dense: str) -> str:
    """The format a checkpoint tensor is written in: experts, the decoder's dense linears, or left as it is."""
    if name.endswith(EXPERT_SUFFIXES):
        return experts
    if name.startswith("model.decoder.") and name.endswith(DENSE_SUFFIXES):
        return dense
    return "bf16"


EXPERT_TARGETS = {  # fused parameter -> the regex of the per-expert modules it is written as
    "gate_up_proj": r"re:.*\.experts\.\d+\.(gate|up)_proj$",
    "down_proj": r"re:.*\.experts\.\d+\.down_proj$",
}
DENSE_TARGET = r"re:model\.decoder\.(layers\.\d+\.(self_attn|mlp)|self_conditioning)\.\w+_proj$"


def _target(name: str) -> str:
    """The config target regex a quantized checkpoint tensor falls under."""
    for kind, regex in EXPERT_TARGETS.items():
        if name.endswith(f".experts.{kind}"):
            return regex
    return DENSE_TARGET


def quantize_checkpoint(source: str, out: Path, experts: str, dense: str = "bf16", progress: bool = True) -> Path:
    """Write `source` (a bf16 checkpoint) to `out` with experts in `experts` and dense linears in `dense`."""
    from safetensors import safe_open
    from safetensors.torch import save_file
    from tqdm import tqdm

    if experts == "bf16" or experts not in ("fp8", "int8", "int4", "nvfp4") or dense not in ("bf16", "fp8", "int8"):
        raise CheckpointError(f"cannot quantize to experts {experts!r}, dense {dense!r}: use fp8, int4 or nvfp4")
    directory = checkpoint_dir(source)
    config = read_config(directory)
    if quantization_method(config) is not None:
        raise CheckpointError(f"{source} is already quantized: quantize a bf16 checkpoint")
    shards = sorted(directory.glob("*.safetensors"))
    if not shards:
        raise CheckpointError(f"{directory} has no .safetensors weights to quantize")
    if out.exists() and any(out.iterdir()):
        raise CheckpointError(f"{out} exists and is not empty: give a new directory")
    out.mkdir(parents=True, exist_ok=True)
    for file in directory.iterdir():
        if file.is_file() and file.suffix != ".safetensors" and file.name != "model.safetensors.index.json":
            shutil.copy2(file, out / file.name)
    weight_map: dict[str, str] = {}
    quantized = {experts: 0, dense: 0}
    group_sizes: dict[str, int] = {}  # target regex -> int4 group, where the weight's inputs need another than 128
    total = sum(_tensor_count(f) for f in shards)
    with tqdm(total=total, desc="quantizing", unit="tensor", disable=not progress) as bar:
        for shard in shards:
            written: dict[str, torch.Tensor] = {}
            with safe_open(str(shard), framework="pt") as f:
                for name in f.keys():  # noqa: SIM118 (safe_open is not a mapping)
                    tensor = f.get_tensor(name)
                    fmt = target_format(name, experts, dense)
                    if fmt == "bf16":
                        written[name] = tensor
                    else:
                        q = weight_format(fmt).quantize(tensor)
                        group = weight_format(fmt).group_of(tensor.shape[-1])
                        if fmt == "int4" and group != weight_format(fmt).group:
                            group_sizes[_target(name)] = group
                        expert = name.endswith(EXPERT_SUFFIXES)
                        modules = per_expert(name, q) if expert else {name.removesuffix(".weight"): q}
                        for module, piece in modules.items():
                            written.update({f"{module}.{k}": v.contiguous() for k, v in on_disk(piece).items()})
                        quantized[fmt] += 1
                    bar.update(1)
            save_file(written, out / shard.name, metadata={"format": "pt"})
            (out / shard.name).chmod(shard.stat().st_mode & 0o777)  # safetensors writes 0600: keep the source's
            weight_map.update(dict.fromkeys(written, shard.name))
            del written
    if not quantized[experts]:
        raise CheckpointError(f"{source} has no fused expert tensors (…experts.gate_up_proj): nothing to quantize")
    if len(shards) > 1:
        index = {"metadata": {}, "weight_map": weight_map}
        (out / "model.safetensors.index.json").write_text(json.dumps(index, indent=2), encoding="utf-8")
    targets: dict[str, list[str]] = {experts: [EXPERT_TARGETS["gate_up_proj"], EXPERT_TARGETS["down_proj"]]}
    if dense != "bf16":
        targets.setdefault(dense, []).append(DENSE_TARGET)
    config["quantization_config"] = compressed_config(experts, dense, targets, group_sizes)
    (out / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    return out


def _tensor_count(shard: Path) -> int:
    from safetensors import safe_open

    with safe_open(str(shard), framework="pt") as f:
        return len(list(f.keys()))
