"""Grouped expert kernels for DiffusionGemma's MoE layers, and fp8 weights for the experts and the dense linears.

Swaps modules of a loaded transformers model in place: the stock experts loop over the experts one matmul at a
time; here all of them run in two grouped matmuls over the token-expert pairs sorted by expert. Inference only:
the swapped model is not for training or `save_pretrained`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .fp8 import Fp8Linear, Fp8Weight, dequantize, quantize_rows, quantize_weight
from .fused_experts import FusedExperts, is_gelu_tanh
from .fused_moe import ExpertTensors, fused_moe, reference_moe
from .moe_tiles import TileChoice, tile_choice

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Kernels:
    """Which torch kernels run on this device and dtype; the others fall back to plain matmuls."""

    grouped_mm: bool
    scaled_grouped_mm: bool
    scaled_mm: bool
    triton_moe: bool = False  # the fused Triton MoE kernels (engine/kernels/fused_moe.py), GPU only


@dataclass(frozen=True)
class ExpertOrder:
    """Token-expert pairs sorted by expert: `perm` [pairs] gives the flat (token * top_k + slot) index of each
    sorted row, `offsets` [experts] (int32) where each expert's rows end."""

    perm: torch.Tensor
    offsets: torch.Tensor


def expert_order(top_k_index: torch.Tensor, num_experts: int) -> ExpertOrder:
    """Sort the [tokens, top_k] routing by expert; no host sync, so it can sit inside a CUDA graph."""
    expert_ids = top_k_index.reshape(-1)
    sorted_ids, perm = torch.sort(expert_ids, stable=True)
    experts = torch.arange(num_experts, device=expert_ids.device, dtype=sorted_ids.dtype)
    offsets = torch.searchsorted(sorted_ids, experts, right=True).to(torch.int32)
    return ExpertOrder(perm=perm, offsets=offsets)


def reference_grouped_mm(x: torch.Tensor, weight: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """[pairs, out]: each expert's rows of x [pairs, in] times its weight [experts, out, in] transposed, one matmul
    per expert (any device and dtype; reads the offsets on the host)."""
    out = x.new_zeros(x.shape[0], weight.shape[1])
    start = 0
    for expert, end in enumerate(offsets.tolist()):
        if end > start:
            out[start:end] = x[start:end] @ weight[expert].T
        start = end
    return out


def grouped_mm(x: torch.Tensor, weight: torch.Tensor, offsets: torch.Tensor, use_kernel: bool) -> torch.Tensor:
    """The same product as `reference_grouped_mm`, in one `torch._grouped_mm` call when `use_kernel`."""
    if use_kernel:
        return torch._grouped_mm(x, weight.transpose(-2, -1), offs=offsets)
    return reference_grouped_mm(x, weight, offsets)


class ExpertWeights(nn.Module):
    """One projection of all experts, [experts, out, in], kept in the model's dtype (the stock parameter itself)."""

    def __init__(self, weight: nn.Parameter, use_kernel: bool) -> None:
        super().__init__()
        self.weight = weight
        self.use_kernel = use_kernel

    def forward(self, x: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        return grouped_mm(x, self.weight, offsets, self.use_kernel)


class Fp8ExpertWeights(Fp8Weight):
    """One projection of all experts as float8 e4m3 [experts, out, in] with a float32 scale per output row.
    Runs `torch._scaled_grouped_mm` on rows quantized per call when `use_kernel`, else dequantizes the weights."""

    def forward(self, x: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        if self.use_kernel:
            xq, x_scale = quantize_rows(x)
            return torch._scaled_grouped_mm(
                xq, self.qweight.transpose(-2, -1), x_scale, self.scale, offs=offsets, out_dtype=x.dtype
            )
        return grouped_mm(x, dequantize(self.qweight, self.scale, x.dtype), offsets, use_kernel=False)


class GroupedExperts(nn.Module):
    """Drop-in for `DiffusionGemmaTextExperts`: same call, same maths, two grouped matmuls instead of a loop."""

    def __init__(
        self,
        gate_up: ExpertWeights | Fp8ExpertWeights,
        down: ExpertWeights | Fp8ExpertWeights,
        act_fn: Callable[[torch.Tensor], torch.Tensor],
        num_experts: int,
    ) -> None:
        super().__init__()
        self.gate_up = gate_up  # [experts, 2 * intermediate, hidden]
        self.down = down  # [experts, hidden, intermediate]
        self.act_fn = act_fn
        self.num_experts = num_experts

    @property
    def is_fp8(self) -> bool:
        return isinstance(self.gate_up, Fp8ExpertWeights)

    def forward(
        self, hidden_states: torch.Tensor, top_k_index: torch.Tensor, top_k_weights: torch.Tensor
    ) -> torch.Tensor:
        """[tokens, hidden] → [tokens, hidden]: the routing-weighted sum of each token's top-k experts."""
        tokens, top_k = top_k_index.shape
        order = expert_order(top_k_index, self.num_experts)
        x = hidden_states[order.perm // top_k]  # [pairs, hidden], grouped by expert
        gate, up = self.gate_up(x, order.offsets).chunk(2, dim=-1)
        y = self.down(self.act_fn(gate) * up, order.offsets)  # [pairs, hidden]
        # Weights multiply in float32 after the down projection, as in the stock module; the pairs go back to
        # (token, slot) order through a permutation, so the sum over slots is deterministic (no atomics).
        weighted = y.float() * top_k_weights.reshape(-1)[order.perm, None].float()
        pairs = torch.empty_like(weighted).index_copy_(0, order.perm, weighted)
        return pairs.view(tokens, top_k, -1).sum(dim=1).to(hidden_states.dtype)


def layer_pairs(model: Any) -> Iterator[tuple[Any, Any]]:
    """(encoder layer i, decoder layer i) of a DiffusionGemmaForBlockDiffusion: two modules sharing one set of
    weights. Swapping a pair at a time frees each layer's old weights before the next layer's new ones exist."""
    yield from zip(model.model.encoder.language_model.layers, model.model.decoder.layers, strict=True)


def text_layers(model: Any) -> Iterator[Any]:
    """Every text layer, encoder and decoder, a pair at a time."""
    for pair in layer_pairs(model):
        yield from pair


def probe_kernels(device: torch.device, dtype: torch.dtype) -> Kernels:
    """Try each kernel once on a small problem here and check its answer against plain matmuls."""
    return Kernels(
        grouped_mm=_works("torch._grouped_mm", lambda: _probe_grouped(device, dtype, fp8=False)),
        scaled_grouped_mm=_works("torch._scaled_grouped_mm", lambda: _probe_grouped(device, dtype, fp8=True)),
        scaled_mm=_works("torch._scaled_mm", lambda: _probe_linear(device, dtype)),
        triton_moe=device.type == "cuda" and _works("Triton fused MoE", lambda: _probe_triton(device, dtype)),
    )


def install_grouped_experts(model: Any, fp8: bool = False, kernels: Kernels | None = None, triton: bool = False) -> int:
    """Swap every layer's experts for `GroupedExperts`, or `FusedExperts` when `triton` and the Triton kernels run
    here (fp8 weights when `fp8`); the encoder and decoder layers that share weights get one shared module, and
    fp8 frees the bf16 expert weights. Returns how many were made."""
    kernels = kernels or probe_kernels(model.device, model.dtype)
    act_fn = getattr(model.model.decoder.layers[0].experts, "act_fn", None)
    use_triton = triton and kernels.triton_moe and act_fn is not None and is_gelu_tanh(act_fn)
    swapped: type[nn.Module] = FusedExperts if use_triton else GroupedExperts
    tiles = tile_choice(_capability(model.device), "fp8" if fp8 else "bf16") if use_triton else None
    count = 0
    for pair in layer_pairs(model):
        made: dict[int, nn.Module] = {}  # by weight identity: tied layers get one module
        for layer in pair:
            experts = layer.experts
            if isinstance(experts, swapped) and (getattr(experts, "is_fp8", False) or not fp8):
                continue
            dense = _dense_expert_weights(experts)
            if dense is None:  # weight-only quantized experts (int8, int4, NVFP4) run their own kernels
                continue
            gate_up, down = dense
            if id(gate_up) not in made:
                made[id(gate_up)] = _grouped(experts, gate_up, down, fp8, kernels, tiles)
            layer.experts = made[id(gate_up)]
        count += len(made)
    if count:
        kind = "fp8" if fp8 else str(model.dtype).removeprefix("torch.")
        log.info("%s experts (%s) in %d layers; kernels %s", swapped.__name__, kind, count, kernels)
    return count


def install_fp8_linears(model: Any, kernels: Kernels | None = None) -> int:
    """Swap the attention, dense-MLP and self-conditioning linears for `Fp8Linear` (shared where tied); the router
    and the lm_head stay in the model's dtype. Returns how many were made."""
    kernels = kernels or probe_kernels(model.device, model.dtype)
    count = 0
    for group in _dense_linears(model):
        made: dict[int, Fp8Linear] = {}  # by weight identity: tied linears get one module
        for parent, name in group:
            linear = getattr(parent, name)
            if not isinstance(linear, nn.Linear) or linear.bias is not None:
                continue
            if id(linear.weight) not in made:
                made[id(linear.weight)] = Fp8Linear(linear.weight, kernels.scaled_mm)
            setattr(parent, name, made[id(linear.weight)])
        count += len(made)
    return count


def _grouped(
    experts: Any, gate_up: torch.Tensor, down: torch.Tensor, fp8: bool, kernels: Kernels, tiles: TileChoice | None
) -> nn.Module:
    """Grouped experts over these weights, or fused ones with `tiles` (the Triton kernels run here)."""
    if tiles is not None:
        fused_gate_up, fused_down = (
            (ExpertTensors(*quantize_weight(w)) if fp8 else ExpertTensors(_parameter(w))) for w in (gate_up, down)
        )
        fallback = None
        if kernels.scaled_grouped_mm if fp8 else kernels.grouped_mm:  # the same tensors, in torch's grouped matmuls
            shared = _shared_weights(fused_gate_up, kernels), _shared_weights(fused_down, kernels)
            fallback = GroupedExperts(*shared, experts.act_fn, int(experts.num_experts))
        return FusedExperts(fused_gate_up, fused_down, tiles, fallback)

    def weights(weight: torch.Tensor) -> ExpertWeights | Fp8ExpertWeights:
        if fp8:
            return Fp8ExpertWeights(weight, kernels.scaled_grouped_mm)
        return ExpertWeights(_parameter(weight), kernels.grouped_mm)

    return GroupedExperts(weights(gate_up), weights(down), experts.act_fn, int(experts.num_experts))


def _shared_weights(tensors: ExpertTensors, kernels: Kernels) -> ExpertWeights | Fp8ExpertWeights:
    """Grouped-matmul weights over the fused kernels' tensors (no copy)."""
    if tensors.scale is None:
        return ExpertWeights(_parameter(tensors.weight), kernels.grouped_mm)
    return Fp8ExpertWeights(None, kernels.scaled_grouped_mm, quantized=(tensors.weight, tensors.scale))


def _capability(device: torch.device) -> tuple[int, int] | None:
    return torch.cuda.get_device_capability(device) if device.type == "cuda" else None


def _parameter(weight: torch.Tensor) -> nn.Parameter:
    return weight if isinstance(weight, nn.Parameter) else nn.Parameter(weight, requires_grad=False)


def _dense_expert_weights(experts: Any) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The [experts, 2 * intermediate, hidden] and [experts, hidden, intermediate] weights of a stock, bf16 grouped
    or bf16 fused experts module; None for a module of quantized weights that has no dense copy."""
    if isinstance(experts, FusedExperts):
        assert not experts.is_fp8
        return experts.gate_up_weight, experts.down_weight
    if isinstance(experts, GroupedExperts):
        assert isinstance(experts.gate_up, ExpertWeights) and isinstance(experts.down, ExpertWeights)
        return experts.gate_up.weight, experts.down.weight
    if not hasattr(experts, "gate_up_proj"):
        return None
    return experts.gate_up_proj, experts.down_proj


def _dense_linears(model: Any) -> Iterator[list[tuple[nn.Module, str]]]:
    """(parent module, attribute) of each linear that fp8 replaces, a layer pair at a time."""
    for pair in layer_pairs(model):
        attention = [(layer.self_attn, name) for layer in pair for name in ("q_proj", "k_proj", "v_proj", "o_proj")]
        yield attention + [(layer.mlp, name) for layer in pair for name in ("gate_proj", "up_proj", "down_proj")]
    yield [(model.model.decoder.self_conditioning, name) for name in ("gate_proj", "up_proj", "down_proj")]


def _works(name: str, probe: Callable[[], bool]) -> bool:
    try:
        ok = probe()
    except Exception as err:  # a probe that fails in any way (no Triton, no kernel for this GPU) means: not here
        log.info("%s unavailable here (%s): falling back to plain matmuls", name, str(err).splitlines()[0][:160])
        return False
    if not ok:
        log.warning("%s gave wrong answers on a probe: falling back to plain matmuls", name)
    return ok


def _probe_grouped(device: torch.device, dtype: torch.dtype, fp8: bool) -> bool:
    generator = torch.Generator(device="cpu").manual_seed(0)
    x = torch.randn(40, 32, generator=generator).to(device=device, dtype=dtype)
    weight = torch.randn(3, 48, 32, generator=generator).to(device=device, dtype=dtype)
    offsets = torch.tensor([16, 16, 40], dtype=torch.int32, device=device)  # an empty expert in the middle
    if fp8:
        got = Fp8ExpertWeights(weight, use_kernel=True)(x, offsets)
        want = Fp8ExpertWeights(weight, use_kernel=False)(x, offsets)
        tolerance = 0.1
    else:
        got = grouped_mm(x, weight, offsets, use_kernel=True)
        want = reference_grouped_mm(x, weight, offsets)
        tolerance = 0.05
    return _close(got, want, tolerance)


def _probe_triton(device: torch.device, dtype: torch.dtype) -> bool:
    generator = torch.Generator(device="cpu").manual_seed(0)
    x = torch.randn(5, 64, generator=generator).to(device=device, dtype=dtype)
    gate_up = ExpertTensors((torch.randn(4, 64, 64, generator=generator) / 8).to(device=device, dtype=dtype))
    down = ExpertTensors((torch.randn(4, 64, 32, generator=generator) / 8).to(device=device, dtype=dtype))
    index = torch.tensor([[0, 3], [3, 1], [1, 0], [0, 3], [2, 1]], device=device)
    weights = torch.full((5, 2), 0.5, device=device)
    want = reference_moe(x, gate_up, down, index, weights)
    return _close(fused_moe(x, gate_up, down, index, weights), want, 0.05)


def _probe_linear(device: torch.device, dtype: torch.dtype) -> bool:
    generator = torch.Generator(device="cpu").manual_seed(0)
    x = torch.randn(5, 32, generator=generator).to(device=device, dtype=dtype)
    weight = torch.randn(48, 32, generator=generator).to(device=device, dtype=dtype)
    return _close(Fp8Linear(weight, use_kernel=True)(x), Fp8Linear(weight, use_kernel=False)(x), 0.1)


def _close(got: torch.Tensor, want: torch.Tensor, relative: float) -> bool:
    """Within `relative` of the reference's scale (fp8 activations quantized per row add a few percent)."""
    scale = float(want.float().abs().max().clamp(min=1e-6))
    return got.shape == want.shape and float((got.float() - want.float()).abs().max()) <= relative * scale
