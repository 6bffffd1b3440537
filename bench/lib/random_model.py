"""The full-size DiffusionGemma 26B-A4B (or a tiny model of the same class) with random weights, built on one
device without ever holding the tied encoder and decoder twice, and the bytes one forward pass must stream.

Used by bench/gpu/engine.py; the real checkpoint is never downloaded: a config.json, a generation_config.json
and a tokenizer are written to a directory and the model is built from that config.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

# text_config of google/diffusiongemma-26B-A4B-it (research/diffusiongemma.md §2); layer types, RoPE and the
# full-attention head overrides are the config class's defaults, which match the checkpoint.
FULL_TEXT = {
    "vocab_size": 262144,
    "hidden_size": 2816,
    "intermediate_size": 2112,
    "num_hidden_layers": 30,
    "num_attention_heads": 16,
    "num_key_value_heads": 8,
    "head_dim": 256,
    "global_head_dim": 512,
    "num_global_key_value_heads": 2,
    "sliding_window": 1024,
    "num_experts": 128,
    "top_k_experts": 8,
    "moe_intermediate_size": 704,
    "max_position_embeddings": 262144,
    "use_bidirectional_attention": "vision",
    "final_logit_softcapping": 30.0,
}
# A vision tower of the released size (hidden 1152, 27 layers, ~0.57B): text workloads never run it, but it
# holds GPU memory in a real deployment.
FULL_VISION = {
    "hidden_size": 1152,
    "intermediate_size": 4304,
    "num_hidden_layers": 27,
    "num_attention_heads": 16,
    "num_key_value_heads": 16,
    "head_dim": 72,
}
TINY_TEXT = {
    **FULL_TEXT,
    "vocab_size": 1024,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 6,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "global_head_dim": 32,
    "num_global_key_value_heads": 1,
    "sliding_window": 64,
    "num_experts": 8,
    "top_k_experts": 2,
    "moe_intermediate_size": 32,
    "max_position_embeddings": 8192,
}
TINY_VISION = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "num_key_value_heads": 2,
    "head_dim": 16,
}
# The checkpoint's generation_config.json (research/diffusiongemma.md §2).
GENERATION = {
    "max_new_tokens": 256,
    "max_denoising_steps": 48,
    "t_min": 0.4,
    "t_max": 0.8,
    "stability_threshold": 1,
    "confidence_threshold": 0.005,
    "eos_token_id": [1, 106, 50],
    "pad_token_id": 0,
    "bos_token_id": 2,
}


def write_checkpoint_dir(directory: Path, tiny: bool) -> Path:
    """config.json, generation_config.json and a tokenizer covering the whole vocabulary, without weights."""
    from tokenizers import Tokenizer, models
    from transformers import DiffusionGemmaConfig, DiffusionGemmaTextConfig, PreTrainedTokenizerFast
    from transformers.models.diffusion_gemma.generation_diffusion_gemma import (
        DiffusionGemmaGenerationConfig,
        EntropyBoundSamplerConfig,
    )
    from transformers.models.gemma4.configuration_gemma4 import Gemma4VisionConfig

    text = DiffusionGemmaTextConfig(**(TINY_TEXT if tiny else FULL_TEXT))
    vision = Gemma4VisionConfig(**(TINY_VISION if tiny else FULL_VISION))
    config = DiffusionGemmaConfig(text_config=text.to_dict(), vision_config=vision.to_dict(), canvas_length=256)
    directory.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(directory)
    generation = DiffusionGemmaGenerationConfig(
        sampler_config=EntropyBoundSamplerConfig(entropy_bound=0.1), **GENERATION
    )
    generation.save_pretrained(directory)
    # Prompts are random token ids: a word-level tokenizer with one word per id decodes any of them.
    special = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"]
    vocab = {name: index for index, name in enumerate(special)}
    vocab.update({f"<{index}>": index for index in range(len(special), text.vocab_size)})
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>")),
        pad_token="<pad>",
        eos_token="<eos>",
        bos_token="<bos>",
        unk_token="<unk>",
        mask_token="<mask>",
    )
    tokenizer.save_pretrained(directory)
    return directory


@contextlib.contextmanager
def _parameters_on_meta() -> Iterator[None]:
    """Every new parameter goes to the meta device while buffers stay real, so that the tied encoder and
    decoder are never allocated twice and computed buffers (RoPE frequencies, layer scalars) keep their values."""
    register = torch.nn.Module.register_parameter

    def to_meta(module: torch.nn.Module, name: str, param: torch.nn.Parameter | None) -> None:
        register(module, name, param)
        if param is not None and param.device.type != "meta":  # meta ones are tied copies: keep their identity
            module._parameters[name] = torch.nn.Parameter(param.to("meta"), requires_grad=False)

    torch.nn.Module.register_parameter = to_meta  # type: ignore[method-assign, assignment]
    try:
        yield
    finally:
        torch.nn.Module.register_parameter = register  # type: ignore[method-assign]


def build_random_model(directory: Path, device: torch.device, dtype: torch.dtype, seed: int = 0) -> Any:
    """A `DiffusionGemmaForBlockDiffusion` of the config in `directory`, randomly initialised on `device`."""
    from transformers import AutoConfig, DiffusionGemmaForBlockDiffusion
    from transformers.models.diffusion_gemma.generation_diffusion_gemma import DiffusionGemmaGenerationConfig

    config = AutoConfig.from_pretrained(directory)
    torch.manual_seed(seed)
    default_dtype = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device), _parameters_on_meta():
            model = DiffusionGemmaForBlockDiffusion(config)
    finally:
        torch.set_default_dtype(default_dtype)
    owners: dict[int, list[tuple[torch.nn.Module, str]]] = {}
    for _, module in model.named_modules(remove_duplicate=False):
        for name, param in module._parameters.items():
            if param is not None:
                owners.setdefault(id(param), []).append((module, name))
    for places in owners.values():  # one tensor per tied group
        first, name = places[0]
        template = first._parameters[name]
        assert template is not None
        shared = torch.nn.Parameter(torch.empty_like(template, device=device), requires_grad=False)
        for module, pname in places:
            module._parameters[pname] = shared
    for module in model.modules():  # construction marked them initialised, but their tensors are new and empty
        module.__dict__.pop("_is_hf_initialized", None)
    with torch.no_grad():
        model.initialize_weights()
    model.eval()
    model.generation_config = DiffusionGemmaGenerationConfig.from_pretrained(directory)
    return model


def check_model(model: Any) -> dict[str, Any]:
    """Facts that show the build is sound: tied storage, initialised finite tensors, parameter count."""
    encoder = model.model.encoder.language_model.layers[0].self_attn.q_proj.weight
    decoder = model.model.decoder.layers[0].self_attn.q_proj.weight
    buffers = [b for b in model.buffers() if b.is_floating_point()]
    unique = {id(p): p for p in model.parameters()}
    experts = model.model.decoder.layers[0].experts.gate_up_proj
    return {
        "encoder_decoder_tied": encoder.data_ptr() == decoder.data_ptr(),
        "buffers_finite": all(bool(torch.isfinite(b).all()) for b in buffers),
        "weights_finite": all(bool(torch.isfinite(p).all()) for p in unique.values()),
        "expert_weight_std": round(float(experts[0].float().std()), 4),  # initializer_range 0.02 if initialised
        "parameters_B": sum(p.numel() for p in unique.values()) / 1e9,
        "weights_GB": sum(p.numel() * p.element_size() for p in unique.values()) / 1e9,
    }


def _tensor_bytes(module: torch.nn.Module, keep: Any) -> int:
    named = [*module.named_parameters(), *module.named_buffers()]
    return sum(t.numel() * t.element_size() for name, t in named if keep(name))


@dataclass(frozen=True)
class StepBytes:
    """What a forward pass streams from memory, in bytes, for the model as it is (bf16, fp8, ...)."""

    dense: int  # attention, dense MLP, router and norms of all layers: read by every pass
    expert: int  # one expert of one layer (gate_up + down, with any scales)
    num_experts: int
    top_k: int
    layers: int
    embedding: int  # the tied embedding / lm_head
    self_conditioning: int  # the decoder's self-conditioning MLP
    kv_per_token: dict[str, int]  # layer type -> K+V bytes of one cached token over all layers of that type
    sliding_window: int

    @classmethod
    def of(cls, model: Any) -> StepBytes:
        """Count the decoder's tensors (shared with the encoder) and the KV geometry of the cache."""
        decoder = model.model.decoder
        text = model.config.get_text_config(decoder=True)
        layers = list(decoder.layers)
        experts = sum(_tensor_bytes(layer, lambda n: "experts" in n) for layer in layers)
        dense = sum(_tensor_bytes(layer, lambda n: "experts" not in n) for layer in layers)
        kv: dict[str, int] = {}
        element = decoder.embed_tokens.weight.element_size()
        for layer, kind in zip(layers, text.layer_types, strict=True):
            kv[kind] = kv.get(kind, 0) + 2 * int(layer.self_attn.k_proj.out_features) * element  # K and V
        return cls(
            dense=dense,
            expert=experts // (len(layers) * text.num_experts),
            num_experts=text.num_experts,
            top_k=text.top_k_experts,
            layers=len(layers),
            embedding=_tensor_bytes(decoder.embed_tokens, lambda n: True),
            self_conditioning=sum(
                _tensor_bytes(m, lambda n: True) for name, m in decoder.named_children() if "self_cond" in name
            ),
            kv_per_token=kv,
            sliding_window=text.sliding_window,
        )

    def touched(self, tokens: int) -> float:
        """Expected distinct experts per layer hit by `tokens` tokens under uniform independent top-k routing."""
        return self.num_experts * (1 - (1 - self.top_k / self.num_experts) ** tokens)

    def kv(self, cached: int) -> int:
        """K/V bytes read for a prefix of `cached` tokens (sliding layers keep window - 1 of them)."""
        sliding = min(cached, self.sliding_window - 1)
        return sum(v * (sliding if kind == "sliding_attention" else cached) for kind, v in self.kv_per_token.items())

    def weights(self, experts_touched: float) -> float:
        return self.dense + self.layers * experts_touched * self.expert

    def decoder_step(self, tokens: int, cached: int, experts_touched: float | None = None) -> float:
        """One denoising step over `tokens` canvas tokens (all rows together): the layers, the embedding twice
        (lm_head and the self-conditioning soft embedding), the SC MLP and the cached K/V."""
        touched = self.touched(tokens) if experts_touched is None else experts_touched
        return self.weights(touched) + 2 * self.embedding + self.self_conditioning + self.kv(cached)

    def encoder_pass(self, tokens: int, cached: int) -> float:
        """Encoding `tokens` new tokens after `cached` ones (no lm_head; embedding rows are gathered)."""
        return self.weights(self.touched(tokens)) + self.kv(cached)

    def ar_token(self, cached: int) -> float:
        """One autoregressive token: top-k experts per layer, the lm_head and the cached K/V."""
        return self.weights(self.top_k) + self.embedding + self.kv(cached)


def copy_bandwidth(device: torch.device, size_bytes: int, runs: int = 10) -> float:
    """Device copy rate in bytes/s, counting the read and the write (as research/moe_probe.py does)."""
    source = torch.ones(size_bytes // 2, dtype=torch.bfloat16, device=device)
    target = torch.empty_like(source)
    times = []
    for index in range(runs + 3):
        synchronize(device)
        started = time.perf_counter()
        target.copy_(source)
        synchronize(device)
        if index >= 3:  # warm-up
            times.append(time.perf_counter() - started)
    del source, target
    return 2 * size_bytes / statistics.median(times)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
