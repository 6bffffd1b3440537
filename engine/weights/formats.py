"""Weight formats: how a weight is quantized (round-to-nearest), which tensors hold it, what they dequantize to (the
plain-PyTorch reference every kernel is tested against), how many bytes it keeps resident, and which kernel
multiplies with it. Adding a format is adding one class to `FORMATS`.

A weight is [..., out, in] (a dense linear, or [experts, out, in] for fused experts), quantized along `in`. Tensors
are named as in the compressed-tensors checkpoint layout (`weight`, `weight_packed`, `weight_scale`,
`weight_global_scale`); every scale is [..., out, in / group] (group = in for per-channel formats). Packed 4-bit
values sit two to a byte, the even element in the low nibble, which is compressed-tensors' int32 packing seen as
bytes on a little-endian machine.
"""

from __future__ import annotations

import enum
import itertools
from dataclasses import dataclass
from typing import ClassVar

import torch

FP8 = torch.float8_e4m3fn
FP8_MAX = 448.0
FP4_MAX = 6.0
E2M1_VALUES = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)  # the magnitudes of the 3 low bits of an e2m1 code
CHUNK_ELEMENTS = 1 << 26  # elements quantized at once along a fused experts tensor's first dim


class Kernel(enum.Enum):
    """Which kernel multiplies with a format's weights."""

    STOCK = "stock"  # the model's own modules (bf16 experts: fused_moe or grouped_mm, as the options say)
    FUSED_MOE = "fused_moe"  # engine/kernels/fused_moe.py: per-channel scale after the dot
    QUANT_MOE = "quant_moe"  # engine/kernels/quant_moe.py: group scales and 4-bit unpacking in registers


@dataclass(frozen=True)
class QuantizedWeight:
    """One weight in a format: its tensors (compressed-tensors names) and the dense shape they stand for."""

    format: str
    tensors: dict[str, torch.Tensor]
    shape: tuple[int, ...]

    @property
    def resident_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.tensors.values())

    def to(self, device: torch.device | str) -> QuantizedWeight:
        return QuantizedWeight(self.format, {k: v.to(device) for k, v in self.tensors.items()}, self.shape)


class WeightFormat:
    """A format: subclasses set the class attributes and implement `_quantize` and `dequantize`."""

    name: ClassVar[str]
    bits: ClassVar[float]  # bits per weight, scales included, for memory planning
    group: ClassVar[int | None]  # elements per scale along `in`; None: one per output channel
    kernel: ClassVar[Kernel]
    moe_kernel: ClassVar[Kernel]

    def quantize(self, weight: torch.Tensor) -> QuantizedWeight:
        """`weight` in this format. Fused experts go a few at a time, so the float32 temporaries stay near
        `CHUNK_ELEMENTS` (one 26B expert tensor at once would need several GB, NVFP4's rounding more)."""
        if weight.dim() < 3 or weight.numel() <= CHUNK_ELEMENTS:
            return self._quantize(weight)
        size = max(1, CHUNK_ELEMENTS // weight[0].numel())
        parts = [self._quantize(weight[start : start + size]) for start in range(0, weight.shape[0], size)]
        tensors = {key: torch.cat([part.tensors[key] for part in parts]) for key in parts[0].tensors}
        return QuantizedWeight(self.name, tensors, tuple(weight.shape))

    def _quantize(self, weight: torch.Tensor) -> QuantizedWeight:
        raise NotImplementedError

    def dequantize(self, q: QuantizedWeight, dtype: torch.dtype) -> torch.Tensor:
        """The dense weight `q` stands for, in `dtype` (computed in float32)."""
        raise NotImplementedError

    def group_of(self, in_features: int) -> int:
        return in_features if self.group is None else self.group


class Bf16(WeightFormat):
    """No quantization: the weight as it is (bf16 on a GPU)."""

    name, bits, group, kernel, moe_kernel = "bf16", 16.0, None, Kernel.STOCK, Kernel.STOCK

    def _quantize(self, weight: torch.Tensor) -> QuantizedWeight:
        return QuantizedWeight(self.name, {"weight": weight}, tuple(weight.shape))

    def dequantize(self, q: QuantizedWeight, dtype: torch.dtype) -> torch.Tensor:
        return q.tensors["weight"].to(dtype)


class _PerChannel(WeightFormat):
    """One float32 scale per output channel, values unpacked: amax / `qmax` maps the row onto the code range."""

    group = None
    qmax: ClassVar[float]
    dtype: ClassVar[torch.dtype]

    def _quantize(self, weight: torch.Tensor) -> QuantizedWeight:
        w = weight.float()
        scale = (w.abs().amax(dim=-1, keepdim=True) / self.qmax).clamp(min=1e-12)  # [..., out, 1]
        return QuantizedWeight(self.name, {"weight": self._codes(w / scale), "weight_scale": scale}, tuple(w.shape))

    def _codes(self, scaled: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def dequantize(self, q: QuantizedWeight, dtype: torch.dtype) -> torch.Tensor:
        return (q.tensors["weight"].float() * q.tensors["weight_scale"].float()).to(dtype)


class Fp8(_PerChannel):
    """float8 e4m3 values with a float32 scale per output channel (compressed-tensors `float-quantized`)."""

    name, bits, kernel, moe_kernel, qmax, dtype = "fp8", 8.0, Kernel.QUANT_MOE, Kernel.FUSED_MOE, FP8_MAX, FP8

    def _codes(self, scaled: torch.Tensor) -> torch.Tensor:
        return scaled.clamp(-FP8_MAX, FP8_MAX).to(FP8)


class Int8(_PerChannel):
    """Symmetric int8 values with a float32 scale per output channel (`int-quantized`, weight-only)."""

    name, bits, kernel, moe_kernel, qmax, dtype = "int8", 8.0, Kernel.QUANT_MOE, Kernel.FUSED_MOE, 127.0, torch.int8

    def _codes(self, scaled: torch.Tensor) -> torch.Tensor:
        return scaled.round().clamp(-128, 127).to(torch.int8)


def pack_nibbles(codes: torch.Tensor) -> torch.Tensor:
    """[..., n] values 0..15 -> [..., n / 2] uint8, the even element in the low nibble."""
    pairs = codes.to(torch.uint8).reshape(*codes.shape[:-1], -1, 2)
    return pairs[..., 0] | (pairs[..., 1] << 4)


def unpack_nibbles(packed: torch.Tensor) -> torch.Tensor:
    """[..., n / 2] uint8 -> [..., n] values 0..15 (int64)."""
    return torch.stack((packed & 0xF, packed >> 4), dim=-1).flatten(-2).long()


class Int4(WeightFormat):
    """Symmetric int4 values (-8..7, stored +8) with a scale per 128 inputs, amax / 7.5 as compressed-tensors
    computes it (`pack-quantized`, W4A16). Inputs that 128 does not divide take groups of 64 or 32 (the 26B's expert
    down projection has 704 inputs: 11 groups of 64), which compressed-tensors and vLLM's kernels also read."""

    name, bits, group, kernel, moe_kernel = "int4", 4.25, 128, Kernel.QUANT_MOE, Kernel.QUANT_MOE

    def group_of(self, in_features: int) -> int:
        for group in (128, 64, 32):
            if in_features % group == 0:
                return group
        raise ValueError(f"int4: input size {in_features} is not a multiple of 32, 64 or 128")

    def _quantize(self, weight: torch.Tensor) -> QuantizedWeight:
        w = _grouped(weight, self.group_of(weight.shape[-1]))  # [..., out, groups, group]
        scale = (w.abs().amax(dim=-1, keepdim=True) / 7.5).clamp(min=1e-12)
        codes = (w / scale).round().clamp(-8, 7) + 8
        packed = pack_nibbles(codes.flatten(-2))
        tensors = {"weight_packed": packed, "weight_scale": scale.squeeze(-1).to(weight.dtype)}
        return QuantizedWeight(self.name, tensors, tuple(weight.shape))

    def dequantize(self, q: QuantizedWeight, dtype: torch.dtype) -> torch.Tensor:
        values = unpack_nibbles(q.tensors["weight_packed"]).float() - 8
        return _ungrouped(values, q.tensors["weight_scale"].float(), dtype)


class Nvfp4(WeightFormat):
    """e2m1 values with an fp8 e4m3 scale per 16 inputs and a float32 global scale per tensor (per expert for fused
    experts); w = value * scale / global_scale, as compressed-tensors' `nvfp4-pack-quantized`. Weight-only here:
    the kernel dequantizes in registers on any GPU."""

    name, bits, group, kernel, moe_kernel = "nvfp4", 4.5, 16, Kernel.QUANT_MOE, Kernel.QUANT_MOE

    def _quantize(self, weight: torch.Tensor) -> QuantizedWeight:
        w = _grouped(weight, self.group_of(weight.shape[-1]))  # [..., out, groups, 16]
        amax = w.abs().flatten(-3).amax(dim=-1).clamp(min=torch.finfo(torch.float32).tiny)  # [...]
        global_scale = (FP8_MAX * FP4_MAX / amax)[..., None]  # [..., 1]
        block = w.abs().amax(dim=-1) / FP4_MAX  # [..., out, groups]
        scale = (block * global_scale[..., None]).clamp(-FP8_MAX, FP8_MAX).to(FP8)
        real_scale = scale.float() / global_scale[..., None]
        scaled = w / torch.where(real_scale == 0, 1.0, real_scale)[..., None]
        codes = _e2m1_codes(scaled.flatten(-2))
        tensors = {"weight_packed": pack_nibbles(codes), "weight_scale": scale, "weight_global_scale": global_scale}
        return QuantizedWeight(self.name, tensors, tuple(weight.shape))

    def dequantize(self, q: QuantizedWeight, dtype: torch.dtype) -> torch.Tensor:
        codes = unpack_nibbles(q.tensors["weight_packed"])
        table = torch.tensor(E2M1_VALUES + tuple(-v for v in E2M1_VALUES), device=codes.device)
        scale = q.tensors["weight_scale"].float() / q.tensors["weight_global_scale"].float()[..., None]
        return _ungrouped(table[codes], scale, dtype)


def _e2m1_codes(x: torch.Tensor) -> torch.Tensor:
    """Round-to-nearest e2m1 codes (uint8, sign in bit 3) of values already scaled into [-6, 6]; a tie goes to the
    smaller magnitude. A magnitude's code is how many midpoints between neighbouring magnitudes lie below it (one
    byte a value, unlike comparing every value with all 8 magnitudes at once)."""
    magnitude = x.abs()
    codes = torch.signbit(x).to(torch.uint8) << 3
    for low, high in itertools.pairwise(E2M1_VALUES):
        codes += magnitude > (low + high) / 2
    return codes


def _grouped(weight: torch.Tensor, group: int) -> torch.Tensor:
    if weight.shape[-1] % group:
        raise ValueError(f"input size {weight.shape[-1]} is not a multiple of the group size {group}")
    return weight.float().reshape(*weight.shape[:-1], -1, group)


def _ungrouped(values: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """values [..., out, in] times scale [..., out, in / group], each scale over its group."""
    grouped = values.reshape(*values.shape[:-1], scale.shape[-1], -1) * scale[..., None]
    return grouped.flatten(-2).to(dtype)


FORMATS: dict[str, WeightFormat] = {f.name: f for f in (Bf16(), Fp8(), Int8(), Int4(), Nvfp4())}


def weight_format(name: str) -> WeightFormat:
    """The format called `name`; ValueError naming the known ones otherwise."""
    if name not in FORMATS:
        raise ValueError(f"unknown weight format {name!r}: use one of {', '.join(FORMATS)}")
    return FORMATS[name]
