"""The parts of transformers' DiffusionGemma internals the engine reaches past the public API, in one place.

Fast paths (fused norms, compiled layers, grouped experts, CUDA graphs, the prefix cache) read module attributes,
pass forward keywords and poke cache layers that transformers may rename between releases. What changed across
the supported range has an adapter here; the rest is listed in `INTERNALS`, and `missing_internals` says which
of them an installed release lacks (tests/engine/test_hf_internals.py runs it on every release CI tries).
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

MODELING = "transformers.models.diffusion_gemma.modeling_diffusion_gemma"

# The lowest release pyproject.toml admits and the one constraints.txt pins: the range CI tests.
TESTED_TRANSFORMERS = ("5.19.0", "5.25.0")


# from_pretrained keywords. From 5.25 on, transformers swaps layers for kernels fetched from the Hugging Face Hub
# unless told not to: code downloaded and run at load, which fails offline (the engine has its own kernels).
# 5.19 to 5.24 take the keyword too, with False as their default.
LOAD_OPTIONS: Final = MappingProxyType({"use_kernels": False})


def norm_eps(norm: Any) -> float:
    """A DiffusionGemmaRMSNorm's epsilon: `variance_epsilon` from 5.25 on, `eps` before."""
    eps = getattr(norm, "variance_epsilon", None)
    return float(norm.eps if eps is None else eps)


@functools.cache
def cache_keyword() -> str:
    """The forward keyword that takes the KV cache: `cache` from 5.25 on (`past_key_values` is deprecated there
    and goes in 5.40), `past_key_values` before."""
    import importlib

    model = importlib.import_module(MODELING).DiffusionGemmaForBlockDiffusion
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def with_cache(cache: Any) -> dict[str, Any]:
    """The keyword argument that hands `cache` to an encoder or decoder forward of the installed release."""
    return {cache_keyword(): cache}


def output_cache(output: Any) -> Any:
    """The KV cache an encoder forward returned: `output.cache` from 5.25 on, `output.past_key_values` before."""
    cache = getattr(output, "cache", None)
    return output.past_key_values if cache is None else cache


@dataclass(frozen=True)
class Internal:
    """One thing of transformers' internals the engine uses: a dotted path from `root`, and who uses it."""

    root: str  # "model" (a DiffusionGemmaForBlockDiffusion), "module" (the modeling module) or "cache"
    path: str
    used_by: str


INTERNALS: tuple[Internal, ...] = (
    Internal("module", "DiffusionGemmaRMSNorm", "fused_norm (swapped by class name; epsilon via norm_eps)"),
    Internal("module", "apply_rotary_pos_emb", "compiled_layers, training.forward"),
    Internal("module", "eager_attention_forward", "compiled_layers"),
    Internal("model", "model.encoder.language_model.layers", "compiled_layers, fused_norm, grouped_moe"),
    Internal("model", "model.decoder.layers", "compiled_layers, fused_norm, grouped_moe, training.forward"),
    Internal("model", "model.decoder.embed_tokens.embed_scale", "denoise, cuda_graphs, training.forward"),
    Internal("model", "model.decoder.self_conditioning.gate_proj", "grouped_moe (fp8 dense), training.forward"),
    Internal("model", "model.decoder.rotary_emb", "training.forward"),
    Internal("model", "model.decoder.norm", "training.forward"),
    Internal("model", "final_logit_softcapping", "training.forward"),
    Internal("layer", "self_attn.q_proj", "compiled_layers, grouped_moe (fp8 dense)"),
    Internal("layer", "self_attn.q_norm", "compiled_layers"),
    Internal("layer", "self_attn.k_norm", "compiled_layers"),
    Internal("layer", "self_attn.v_norm", "compiled_layers"),
    Internal("layer", "self_attn.head_dim", "compiled_layers"),
    Internal("layer", "self_attn.scaling", "compiled_layers"),
    Internal("layer", "self_attn.sliding_window", "compiled_layers"),
    Internal("layer", "self_attn.append_to_cache", "compiled_layers (decoder layers)"),
    Internal("layer", "input_layernorm", "compiled_layers"),
    Internal("layer", "post_attention_layernorm", "compiled_layers"),
    Internal("layer", "pre_feedforward_layernorm", "compiled_layers"),
    Internal("layer", "pre_feedforward_layernorm_2", "compiled_layers"),
    Internal("layer", "post_feedforward_layernorm", "compiled_layers"),
    Internal("layer", "post_feedforward_layernorm_1", "compiled_layers"),
    Internal("layer", "post_feedforward_layernorm_2", "compiled_layers"),
    Internal("layer", "layer_scalar", "compiled_layers, training.forward"),
    Internal("layer", "mlp.gate_proj", "compiled_layers, grouped_moe (fp8 dense)"),
    Internal("layer", "router", "compiled_layers, training.forward"),
    Internal("layer", "experts.gate_up_proj", "grouped_moe"),
    Internal("layer", "experts.down_proj", "grouped_moe"),
    Internal("layer", "experts.act_fn", "grouped_moe"),
    Internal("layer", "experts.num_experts", "grouped_moe"),
    Internal("cache", "layers", "prefix_cache, packed_prefix, cuda_graphs"),
    Internal("cache", "batch_repeat_interleave", "denoise"),
    Internal("sliding", "activate_past_recording", "prefix_cache"),
    Internal("sliding", "record_past", "prefix_cache"),
    Internal("sliding", "cumulative_length", "prefix_cache"),
    Internal("sliding", "crop", "prefix_cache"),
)


def missing_internals(model: Any) -> list[str]:
    """The entries of `INTERNALS` the installed transformers lacks, read on `model` (a DiffusionGemma model with
    at least one sliding and one full layer) and a cache it fills; an empty list when all are there."""
    import importlib

    import torch

    cache = importlib.import_module("transformers").DynamicCache(config=model.config.get_text_config())
    with torch.inference_mode():
        model.model.encoder(
            input_ids=torch.tensor([[2, 3, 4]]), position_ids=torch.arange(3)[None], **with_cache(cache)
        )
    sliding = next((layer for layer in cache.layers if getattr(layer, "is_sliding", False)), None)
    roots = {
        "module": importlib.import_module(MODELING),
        "model": model,
        "layer": model.model.decoder.layers[0],
        "cache": cache,
        "sliding": sliding,
    }  # a None root (no sliding layer) reads as absent below
    absent = object()
    missing = []
    for internal in INTERNALS:
        value = roots[internal.root]
        for name in internal.path.split("."):
            value = getattr(value, name, absent)
        if value is absent:
            missing.append(f"{internal.root}.{internal.path} (used by {internal.used_by})")
    return missing
