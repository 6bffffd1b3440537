"""Which weight format the engine loads: `--weights auto` picks by free GPU memory (bf16 when it fits with room for
the cache, else fp8, else int4), an explicit choice that cannot fit fails with one line naming the memory needed
and free; on the CPU auto keeps the checkpoint's own format (dequantized at load: Triton does not run there).
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .compressed import encoder_copy
from .formats import FORMATS

CHOICES = ("auto", *FORMATS)
AUTO_ORDER = ("bf16", "fp8", "int4")
CACHE_RESERVE_BYTES = 4 << 30  # KV cache of a 2k prompt, activations and step graphs of the 26B model, with room
GB = 1e9
_DTYPE_BYTES = {"BF16": 2, "F16": 2, "F32": 4, "F8_E4M3": 1, "I8": 1, "U8": 1, "I32": 4, "I64": 8}


@dataclass(frozen=True)
class WeightsChoice:
    """The format the experts are loaded in, and why: shown by the engine's status and `doctor`."""

    requested: str
    experts: str
    reason: str


@dataclass(frozen=True)
class CheckpointSizes:
    """Parameters of a checkpoint's experts and of the rest, and the bytes its files hold."""

    expert_params: int
    other_params: int
    file_bytes: int

    def bytes_as(self, experts: str) -> int:
        """Resident weight bytes with the experts in `experts` and everything else in bf16."""
        return int(self.expert_params * FORMATS[experts].bits / 8 + self.other_params * 2)


def checkpoint_sizes(directory: Path) -> CheckpointSizes:
    """Read from the safetensors headers only (no tensor data), packed tensors counted as the values they hold, an
    encoder layer's copy of a decoder layer tensor (an unfused checkpoint's experts) once: the model ties them."""
    tensors: dict[str, dict[str, Any]] = {}
    size = 0
    for file in directory.glob("*.safetensors"):
        size += file.stat().st_size
        try:
            with file.open("rb") as f:
                tensors.update(json.loads(f.read(struct.unpack("<Q", f.read(8))[0])))
        except (OSError, ValueError, struct.error):
            continue  # a damaged file: loading it says so, in its own words
    expert = other = 0
    for name, info in tensors.items():
        if name == "__metadata__" or name.endswith(("_scale", "_shape", "zero_point")):
            continue
        if encoder_copy(name, tensors):
            continue
        count = 1
        for dim in info["shape"]:
            count *= dim
        count *= {"U8": 2, "I32": 8}.get(info["dtype"], 1) if "packed" in name else 1
        if ".experts." in name:
            expert += count
        else:
            other += count
    return CheckpointSizes(expert, other, size)


def choose_weights(requested: str, own: str, sizes: CheckpointSizes, free_bytes: int | None) -> WeightsChoice:
    """The experts' format for `requested` (auto or a format name) given the checkpoint's own format and the free
    GPU memory (None on the CPU). ValueError, one line, when an explicit choice cannot be had or cannot fit."""
    if requested not in CHOICES:
        raise ValueError(f"unknown --weights {requested!r}: use one of {', '.join(CHOICES)}")
    if own != "bf16" and requested not in ("auto", own):
        raise ValueError(
            f"the checkpoint is {own}: --weights {requested} needs a bf16 checkpoint (or use --weights {own})"
        )
    if free_bytes is None:
        experts = own if requested == "auto" else requested
        return WeightsChoice(requested, experts, f"{experts}: on the CPU the checkpoint's own format")
    if requested != "auto":
        needed = sizes.bytes_as(requested) + CACHE_RESERVE_BYTES
        if needed > free_bytes:
            raise ValueError(
                f"--weights {requested} needs {needed / GB:.1f} GB of GPU memory (weights and cache), "
                f"{free_bytes / GB:.1f} GB is free: use --weights auto or a smaller format"
            )
        return WeightsChoice(requested, requested, f"{requested}: asked for")
    candidates = AUTO_ORDER[AUTO_ORDER.index(own) :] if own in AUTO_ORDER else (own,)
    for fmt in candidates:
        needed = sizes.bytes_as(fmt) + CACHE_RESERVE_BYTES
        if needed <= free_bytes:
            return WeightsChoice(
                "auto", fmt, f"{fmt}: needs {needed / GB:.1f} GB, {free_bytes / GB:.1f} GB free on the GPU"
            )
    fmt = candidates[-1]
    raise ValueError(
        f"the model needs {(sizes.bytes_as(fmt) + CACHE_RESERVE_BYTES) / GB:.1f} GB of GPU memory even as {fmt}, "
        f"{free_bytes / GB:.1f} GB is free: free GPU memory or use --device cpu"
    )
