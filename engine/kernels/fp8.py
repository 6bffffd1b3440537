"""fp8 weights for the engine's torch kernels: float8 e4m3 with a float32 scale per output row, quantized in chunks
so a 1.5 GB expert tensor never needs a float32 copy, and the drop-in `Fp8Linear` for the dense projections."""

from __future__ import annotations

import torch
from torch import nn

FP8 = torch.float8_e4m3fn
FP8_MAX = float(torch.finfo(FP8).max)  # 448
_QUANTIZE_CHUNK = 16  # experts (or weight rows / 16) quantized at a time, so the float32 copy stays small


def quantize_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x as float8 e4m3 with one float32 scale per row (over the last dim): x ≈ q * scale[..., None]."""
    scale = x.abs().amax(dim=-1).float().clamp(min=1e-12) / FP8_MAX
    q = (x.float() / scale[..., None]).clamp(-FP8_MAX, FP8_MAX).to(FP8)
    return q, scale


def quantize_weight(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`quantize_rows` over the first dim in chunks, so a 1.5 GB expert tensor never needs a float32 copy."""
    q = torch.empty(weight.shape, dtype=FP8, device=weight.device)
    scale = torch.empty(weight.shape[:-1], dtype=torch.float32, device=weight.device)
    step = _QUANTIZE_CHUNK if weight.dim() == 3 else _QUANTIZE_CHUNK * 1024
    for start in range(0, weight.shape[0], step):
        q[start : start + step], scale[start : start + step] = quantize_rows(weight[start : start + step])
    return q, scale


def dequantize(q: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The weight that `q` and `scale` stand for, in `dtype`."""
    return (q.float() * scale[..., None]).to(dtype)


class Fp8Weight(nn.Module):
    """A weight held as float8 e4m3 with a float32 scale per output row (`scale` has the weight's shape less its
    last dim); `use_kernel`: run the scaled fp8 kernel, else dequantize. `quantized`: the (weight, scale) already
    made from `weight`, shared rather than made again."""

    def __init__(
        self, weight: torch.Tensor | None, use_kernel: bool, quantized: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> None:
        super().__init__()
        q, scale = quantized if quantized is not None else quantize_weight(_given(weight).detach())
        self.qweight: torch.Tensor
        self.scale: torch.Tensor
        self.register_buffer("qweight", q)
        self.register_buffer("scale", scale)
        self.use_kernel = use_kernel


class Fp8Linear(Fp8Weight):
    """Drop-in for a bias-free `nn.Linear`: float8 e4m3 weight [out, in] with a float32 scale per output row.
    Runs `torch._scaled_mm` on rows quantized per call when `use_kernel`, else dequantizes the weight."""

    def __init__(self, weight: torch.Tensor, use_kernel: bool) -> None:
        super().__init__(weight, use_kernel)
        self.in_features = int(weight.shape[1])
        self.out_features = int(weight.shape[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features)
        if self.use_kernel:
            xq, x_scale = quantize_rows(rows)
            out = torch._scaled_mm(
                xq, self.qweight.t(), scale_a=x_scale[:, None], scale_b=self.scale[None, :], out_dtype=x.dtype
            )
        else:
            out = nn.functional.linear(rows, dequantize(self.qweight, self.scale, x.dtype))
        return out.reshape(*x.shape[:-1], self.out_features)


def _given(weight: torch.Tensor | None) -> torch.Tensor:
    assert weight is not None, "an fp8 weight needs the weight or its quantized form"
    return weight
