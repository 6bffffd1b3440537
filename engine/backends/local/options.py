"""How the engine runs a loaded model: the GPU fast paths (grouped or fused Triton expert kernels, fp8 weights,
fused norms, compiled layers, CUDA graphs of the denoising step, a batch's new prompts encoded together) and the one
switch, `eager=True`, that turns them all off. Applying options changes the model in place; on the CPU nothing changes
unless asked for explicitly.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from ...kernels.compiled_layers import install_compiled_layers
from ...kernels.cuda_graphs import GraphBuckets, StepGraphs
from ...kernels.fused_norm import install_fused_norms
from ...kernels.grouped_moe import install_fp8_linears, install_grouped_experts, probe_kernels
from ...user_dirs import cache_dir, private_dir

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineOptions:
    """Speed switches for one engine; the defaults are the fast paths on a GPU and the stock model on the CPU."""

    eager: bool = False  # the stock transformers modules and no graphs, whatever the other fields say
    grouped_moe: bool | None = None  # grouped expert kernels; None: on a GPU only
    fp8: bool = False  # fp8 expert weights (implies grouped experts)
    triton_moe: bool | None = None  # the fused Triton MoE kernels (grouped matmuls where those measured faster);
    # None: on a GPU where they pass their probe
    fp8_dense: bool = False  # fp8 attention, dense-MLP and self-conditioning linears too
    fused_norms: bool | None = None  # one-kernel RMSNorm in the text layers; None: on a GPU only
    compile_layers: bool = False  # torch.compile the text layers around attention (Inductor; a GPU wants Triton)
    canvas_attention: bool = False  # the decoder reads the prompt K/V in place, in the Triton attention kernel
    graphs: bool = True  # CUDA graphs of the denoising step (GPU only)
    prefill_together: bool | None = None  # batched jobs encode new prompts in one pass; None: on a GPU only
    buckets: GraphBuckets = field(default_factory=GraphBuckets)


def apply_options(model: Any, options: EngineOptions) -> StepGraphs | None:
    """Swap in the kernels `options` asks for and return the step graphs to denoise with, or None for eager steps."""
    if options.eager:
        return None
    on_gpu = model.device.type == "cuda"
    grouped = on_gpu if options.grouped_moe is None else options.grouped_moe
    triton = on_gpu if options.triton_moe is None else options.triton_moe
    if grouped or options.fp8 or options.fp8_dense:
        kernels = probe_kernels(model.device, model.dtype)
        if grouped or options.fp8:
            install_grouped_experts(model, fp8=options.fp8, kernels=kernels, triton=triton)
        if options.fp8_dense:
            count = install_fp8_linears(model, kernels=kernels)
            log.info("fp8 dense linears: %d (scaled_mm kernel: %s)", count, kernels.scaled_mm)
    if on_gpu if options.fused_norms is None else options.fused_norms:
        log.info("fused norms: %d", install_fused_norms(model))
    if options.compile_layers or options.canvas_attention:
        inductor = private_dir(cache_dir()) / "inductor"
        install_compiled_layers(model, options.compile_layers, inductor, in_place_attention=options.canvas_attention)
    if options.graphs and on_gpu:
        return StepGraphs(model, options.buckets)
    return None


def prefills_together(model: Any, options: EngineOptions) -> bool:
    """Whether batched jobs encode their new prompts in one encoder pass (by default on a GPU only)."""
    if options.eager:
        return False
    return model.device.type == "cuda" if options.prefill_together is None else options.prefill_together
