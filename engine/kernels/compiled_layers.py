"""DiffusionGemma's text layers with the maths around attention compiled by torch.compile (opt-in:
EngineOptions.compile_layers, `diffusion-copilot engine --compile-layers`).

A denoising step runs about 65 small operations per layer (bench/gpu/layer_ops.py): norms, rotary embedding,
routing, the sort of token-expert pairs, the weighted sum of the experts. On a GPU each is a kernel, and inside a
CUDA graph each still costs a few microseconds of launch and tail. Here each layer's forward is split in three
regions: before attention (input norm, q/k/v projections, their norms, rotary embedding), attention itself (the
stock cache update and attention function, not compiled), and after attention (output projection, dense MLP,
router, experts, the norms and residuals). The two outer regions are compiled once for all layers of a kind,
with dynamic shapes, so Inductor fuses their elementwise work into a few kernels (about 24 per layer are left);
Inductor caches what it generated on disk for the next start. Inference only, like grouped_moe.

If compiling fails (no Triton, an unsupported op), the layers fall back to running the same regions eagerly.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)

Region = Callable[..., Any]


def pre_attention(attn: Any, norm: Any, hidden: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> Any:
    """Input norm, q/k/v projections, their norms and the rotary embedding: q, k, v as [batch, heads, tokens, dim]
    (the stock attention's maths before its cache update)."""
    from transformers.models.diffusion_gemma.modeling_diffusion_gemma import apply_rotary_pos_emb

    x = norm(hidden)
    shape = (*x.shape[:-1], -1, attn.head_dim)
    query = apply_rotary_pos_emb(attn.q_norm(attn.q_proj(x).view(shape)), cos, sin, unsqueeze_dim=2)
    key = attn.k_proj(x).view(shape)
    value = attn.v_proj(x).view(shape) if attn.v_proj is not None else key
    key = apply_rotary_pos_emb(attn.k_norm(key), cos, sin, unsqueeze_dim=2)
    value = attn.v_norm(value)
    return query.transpose(1, 2), key.transpose(1, 2), value.transpose(1, 2)


def post_attention(layer: Any, residual: torch.Tensor, attended: torch.Tensor) -> torch.Tensor:
    """Output projection, then the dense MLP and the experts side by side, with the stock layer's norms, residuals
    and layer scalar. `attended` is the attention function's output, [batch, tokens, heads, dim]."""
    hidden = layer.self_attn.o_proj(attended.reshape(*residual.shape[:-1], -1))
    hidden = residual + layer.post_attention_layernorm(hidden)
    residual = hidden
    dense = layer.post_feedforward_layernorm_1(layer.mlp(layer.pre_feedforward_layernorm(hidden)))
    flat = residual.reshape(-1, residual.shape[-1])
    _, top_k_weights, top_k_index = layer.router(flat)
    experts = layer.experts(layer.pre_feedforward_layernorm_2(flat), top_k_index, top_k_weights)
    experts = layer.post_feedforward_layernorm_2(experts.reshape(residual.shape))
    hidden = residual + layer.post_feedforward_layernorm(dense + experts)
    scaled: torch.Tensor = hidden * layer.layer_scalar
    return scaled


def attention(
    attn: Any, query: Any, key: Any, value: Any, mask: Any, cache: Any, kwargs: dict[str, Any], in_place: bool = False
) -> Any:
    """The stock attention between the two regions: the decoder appends the canvas K/V to a read-only copy of
    the prompt cache, the encoder writes its K/V into the cache; then the configured attention function. With
    `in_place`, the decoder instead reads the prompt K/V where they are, in the canvas attention kernel."""
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
    from transformers.models.diffusion_gemma.modeling_diffusion_gemma import eager_attention_forward

    if in_place and cache is not None and hasattr(attn, "append_to_cache"):
        return attention_in_place(attn, query, key, value, cache)
    if cache is not None:
        if hasattr(attn, "append_to_cache"):
            key, value = attn.append_to_cache(cache, key, value)
        else:
            key, value = cache.update(key, value, attn.layer_idx, kwargs=kwargs)
    interface = ALL_ATTENTION_FUNCTIONS.get_interface(attn.config._attn_implementation, eager_attention_forward)
    output, _ = interface(
        attn,
        query,
        key,
        value,
        mask,
        dropout=0.0,
        scaling=attn.scaling,
        sliding_window=attn.sliding_window,
        is_causal=attn.is_causal,
        **kwargs,
    )
    return output


def attention_in_place(attn: Any, query: Any, key: Any, value: Any, cache: Any) -> Any:
    """The decoder's attention by the canvas attention kernel: the canvas queries against the prompt K/V of
    `cache` (read in place, each row up to its own length) and the canvas K/V, [batch, canvas, heads, dim]."""
    from .canvas_attention import canvas_attention

    layer = cache.layers[attn.layer_idx]
    batch, _, canvas, _ = query.shape
    lengths = getattr(layer, "lengths", None)  # a DynamicCache layer holds the same tokens for every row
    if lengths is None:
        lengths = torch.full((batch,), layer.keys.shape[-2], dtype=torch.int32, device=query.device)
    canvas_len = getattr(cache, "canvas_len", None)  # padded canvas positions of a graph's bucket are not keys
    if canvas_len is None:
        canvas_len = torch.full((1,), canvas, dtype=torch.int32, device=query.device)
    return canvas_attention(query, layer.keys, layer.values, lengths, key, value, canvas_len, attn.scaling)


class Regions:
    """The two compiled regions, shared by every layer; after the first failure, the eager ones for good.
    `in_place_attention`: the decoder attends through the canvas attention kernel."""

    def __init__(self, compile_regions: bool, in_place_attention: bool = False) -> None:
        self.in_place_attention = in_place_attention
        self.compiled = compile_regions
        self.pre: Region = pre_attention
        self.post: Region = post_attention
        if compile_regions:
            self.pre = torch.compile(pre_attention, dynamic=True)
            self.post = torch.compile(post_attention, dynamic=True)

    def run(self, name: str, *args: Any) -> Any:
        region = self.pre if name == "pre" else self.post
        if not self.compiled:
            return region(*args)
        try:
            return region(*args)
        except torch.cuda.OutOfMemoryError:
            raise  # the job's to report; the eager regions would need the memory too
        except Exception as err:  # a compiler problem must cost speed, never a completion
            log.warning("compiled text layers failed, running them eagerly from now on: %s", err)
            self.compiled = False
            self.pre, self.post = pre_attention, post_attention
            return self.run(name, *args)


class LayerForward:
    """Replaces one text layer's `forward`: the same arguments and result as the stock encoder and decoder
    layers, computed by the shared regions around the stock attention."""

    def __init__(self, layer: Any, regions: Regions) -> None:
        self.layer = layer
        self.regions = regions

    def __call__(
        self,
        hidden_states: torch.Tensor,
        position_embeddings: Any = None,
        attention_mask: Any = None,
        position_ids: Any = None,
        cache: Any = None,
        **kwargs: Any,
    ) -> torch.Tensor:
        cache = cache if cache is not None else kwargs.pop("past_key_values", None)
        layer = self.layer
        cos, sin = position_embeddings
        query, key, value = self.regions.run("pre", layer.self_attn, layer.input_layernorm, hidden_states, cos, sin)
        attended = attention(
            layer.self_attn, query, key, value, attention_mask, cache, kwargs, self.regions.in_place_attention
        )
        result: torch.Tensor = self.regions.run("post", layer, hidden_states, attended)
        return result


def text_layers(model: Any) -> list[Any]:
    """Every encoder and decoder text layer of a DiffusionGemmaForBlockDiffusion."""
    return [*model.model.encoder.language_model.layers, *model.model.decoder.layers]


def install_compiled_layers(
    model: Any, compile_regions: bool = True, cache_dir: Path | None = None, in_place_attention: bool = False
) -> Regions:
    """Route every text layer's forward through `LayerForward` (compiled regions unless `compile_regions` is
    False; the canvas attention kernel in the decoder when `in_place_attention`); Inductor's cache goes to
    `cache_dir` unless TORCHINDUCTOR_CACHE_DIR is set."""
    if compile_regions:
        if cache_dir is not None and _inductor_cache_is_default():
            os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(cache_dir)
        import torch._dynamo

        # One compiled graph per region and layer kind (encoder/decoder, sliding/full, batch 1 or more).
        config = torch._dynamo.config
        name = "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit"
        setattr(config, name, max(getattr(config, name), 32))
        log.info("text layers compiled around attention; Inductor cache %s", os.environ.get("TORCHINDUCTOR_CACHE_DIR"))
    regions = Regions(compile_regions, in_place_attention)
    for layer in text_layers(model):
        layer.forward = LayerForward(layer, regions)
    return regions


def _inductor_cache_is_default() -> bool:
    """Whether Inductor's cache directory is its default: unset, or set to the default by importing Inductor."""
    current = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    if current is None:
        return True
    try:
        from torch._inductor.runtime.cache_dir_utils import default_cache_dir
    except ImportError:
        return False
    return os.path.abspath(current) == os.path.abspath(default_cache_dir())
