"""The training forward of a `DiffusionGemmaForBlockDiffusion`, over its own modules and weights, in one pass.

At inference the causal encoder writes the prompt's KV cache and the decoder (the same layers) attends
bidirectionally over [cache ; canvas]. Here prompt and canvas form one sequence and the attention mask gives
each query exactly the keys it has at inference: prompt tokens attend causally (sliding layers: the last
`sliding_window` tokens), canvas tokens attend to the whole canvas and to the prompt (sliding layers: the last
`sliding_window - 1` prompt tokens, what the sliding cache keeps). The experts run densely (every expert on every
token, weighted by the router's top-k weights, zero elsewhere): the same function as the routed loop, as a few
large matrix products that compile well. tests/engine/training/test_training.py checks it against the
transformers forward.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from transformers.models.diffusion_gemma.modeling_diffusion_gemma import apply_rotary_pos_emb


def attention_masks(
    prompt_len: torch.Tensor, canvas_len: torch.Tensor, prompt_slots: int, canvas_slots: int, window: int
) -> dict[str, torch.Tensor]:
    """Boolean [rows, 1, slots, slots] masks (True = attend) for full and sliding layers. Padding and absent
    slots attend only to themselves, so every softmax row stays finite."""
    slots = prompt_slots + canvas_slots
    slot = torch.arange(slots, device=prompt_len.device)
    query, key = slot[None, :, None], slot[None, None, :]
    start = (prompt_slots - prompt_len)[:, None, None]
    canvas_end = (prompt_slots + canvas_len)[:, None, None]
    key_prompt = (key >= start) & (key < prompt_slots)
    key_canvas = (key >= prompt_slots) & (key < canvas_end)
    is_canvas = query >= prompt_slots
    valid = (query >= start) & (query < canvas_end)
    causal = key_prompt & (key <= query)
    full = torch.where(is_canvas, key_prompt | key_canvas, causal)
    recent = key_prompt & (key >= prompt_slots - (window - 1))
    sliding = torch.where(is_canvas, recent | key_canvas, causal & (query - key < window))
    itself = query == key
    return {
        "full_attention": torch.where(valid, full, itself)[:, None],
        "sliding_attention": torch.where(valid, sliding, itself)[:, None],
    }


def _attention(attn: Any, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    rows, slots, _ = x.shape
    shape = (rows, slots, -1, attn.head_dim)
    query = apply_rotary_pos_emb(attn.q_norm(attn.q_proj(x).view(shape)), cos, sin, unsqueeze_dim=2).transpose(1, 2)
    key_raw = attn.k_proj(x).view(shape)
    value = attn.v_proj(x).view(shape) if attn.v_proj is not None else key_raw
    key = apply_rotary_pos_emb(attn.k_norm(key_raw), cos, sin, unsqueeze_dim=2).transpose(1, 2)
    value = attn.v_norm(value).transpose(1, 2)
    groups = query.shape[1] // key.shape[1]
    key, value = key.repeat_interleave(groups, dim=1), value.repeat_interleave(groups, dim=1)
    out = F.scaled_dot_product_attention(query, key, value, attn_mask=mask, scale=attn.scaling)
    return attn.o_proj(out.transpose(1, 2).reshape(rows, slots, -1))  # type: ignore[no-any-return]


def dense_experts(
    experts: Any, x: torch.Tensor, top_k_index: torch.Tensor, top_k_weights: torch.Tensor
) -> torch.Tensor:
    """Every expert on every token, weighted by the routing weights (zero for experts not chosen). [tokens, H]"""
    tokens, hidden = x.shape
    count, width = experts.num_experts, experts.intermediate_dim
    weights = torch.zeros(tokens, count, dtype=top_k_weights.dtype, device=x.device)
    weights = weights.scatter(1, top_k_index, top_k_weights)  # [tokens, experts]
    gate_up = F.linear(x, experts.gate_up_proj.reshape(count * 2 * width, hidden)).view(tokens, count, 2 * width)
    gate, up = gate_up.chunk(2, dim=-1)
    act = experts.act_fn(gate) * up * weights[..., None].to(gate.dtype)  # [tokens, experts, width]
    down = experts.down_proj.permute(1, 0, 2).reshape(hidden, count * width)
    out: torch.Tensor = F.linear(act.reshape(tokens, count * width), down)
    return out


def _layer(layer: Any, h: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    residual = h
    h = residual + layer.post_attention_layernorm(_attention(layer.self_attn, layer.input_layernorm(h), cos, sin, mask))
    residual = h
    dense = layer.post_feedforward_layernorm_1(layer.mlp(layer.pre_feedforward_layernorm(h)))
    flat = h.reshape(-1, h.shape[-1])
    _, top_k_weights, top_k_index = layer.router(flat)
    routed = dense_experts(layer.experts, layer.pre_feedforward_layernorm_2(flat), top_k_index, top_k_weights)
    routed = layer.post_feedforward_layernorm_2(routed.reshape(h.shape))
    h = residual + layer.post_feedforward_layernorm(dense + routed)
    scaled: torch.Tensor = h * layer.layer_scalar
    return scaled


def soft_embedding(model: Any, logits: torch.Tensor) -> torch.Tensor:
    """The self-conditioning signal of the previous pass's logits: softmax @ embeddings * sqrt(hidden)."""
    embed = model.model.decoder.embed_tokens
    probs = logits.softmax(dim=-1, dtype=torch.float32).to(embed.weight.dtype)
    signal: torch.Tensor = torch.matmul(probs, embed.weight) * embed.embed_scale.to(embed.weight.dtype)
    return signal


def canvas_logits(
    model: Any,
    tokens: torch.Tensor,
    prompt_len: torch.Tensor,
    canvas_len: torch.Tensor,
    prompt_slots: int,
    sc_signal: torch.Tensor | None = None,
) -> torch.Tensor:
    """Soft-capped float logits of the canvas slots. tokens [rows, slots] -> [rows, canvas_slots, vocab]"""
    decoder = model.model.decoder
    text_config = model.config.text_config
    slots = tokens.shape[1]
    canvas_slots = slots - prompt_slots
    embeds = decoder.embed_tokens(tokens)
    prompt_embeds, canvas_embeds = embeds[:, :prompt_slots], embeds[:, prompt_slots:]
    signal = torch.zeros_like(canvas_embeds) if sc_signal is None else sc_signal.to(canvas_embeds.dtype)
    h = torch.cat([prompt_embeds, decoder.self_conditioning(canvas_embeds, signal)], dim=1)
    start = prompt_slots - prompt_len
    positions = (torch.arange(slots, device=tokens.device)[None] - start[:, None]).clamp(min=0)
    masks = attention_masks(prompt_len, canvas_len, prompt_slots, canvas_slots, int(text_config.sliding_window))
    rotary = {kind: decoder.rotary_emb(h, positions, kind) for kind in decoder.unique_layer_types}
    for index, layer in enumerate(decoder.layers[: text_config.num_hidden_layers]):
        kind = text_config.layer_types[index]
        cos, sin = rotary[kind]
        h = _layer(layer, h, cos, sin, masks[kind])
    logits = model.lm_head(decoder.norm(h[:, prompt_slots:])).float()
    cap = model.final_logit_softcapping
    capped: torch.Tensor = logits if cap is None else torch.tanh(logits / cap) * cap
    return capped
