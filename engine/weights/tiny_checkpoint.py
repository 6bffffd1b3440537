"""Small DiffusionGemma checkpoints built offline: a byte-level BPE tokenizer trained on local source files and
a `DiffusionGemmaForBlockDiffusion` of a small configuration, saved with `save_pretrained` exactly as a real
checkpoint is laid out (config, generation_config, safetensors, tokenizer).
"""

from __future__ import annotations

import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..prompt.layout import BOS, EOS, PAD, SPECIAL_TOKENS
from .checkpoint import RANDOM_WEIGHTS_MARKER


@dataclass(frozen=True)
class TinyShape:
    """The sizes of a small DiffusionGemma; the defaults build a ~0.4M-parameter test model."""

    vocab_size: int = 1024
    hidden_size: int = 64
    intermediate_size: int = 128
    num_layers: int = 4  # the last one is full attention, the rest sliding
    num_heads: int = 4
    num_kv_heads: int = 2
    head_dim: int = 16
    global_head_dim: int = 32
    sliding_window: int = 16
    num_experts: int = 4
    top_k_experts: int = 2
    moe_intermediate_size: int = 32
    canvas_length: int = 32
    max_positions: int = 4096


def stdlib_sources(limit: int = 150) -> list[Path]:
    """Python files of the standard library, a corpus present on every machine."""
    return sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))[:limit]


def train_tokenizer(texts: Iterator[str], vocab_size: int) -> Any:
    """A byte-level BPE with the layout's special tokens first (pad 0, eos 1, bos 2), as a transformers tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    hf_tok = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token="<unk>",
        mask_token="<mask>",
        additional_special_tokens=list(SPECIAL_TOKENS[5:]),
    )
    hf_tok.chat_template = (
        "{{ bos_token }}{% for m in messages %}<|turn>{{ m['role'] }}\n{{ m['content'] }}<turn|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|turn>model\n{% endif %}"
    )
    assert hf_tok.convert_tokens_to_ids([PAD, EOS, BOS]) == [0, 1, 2]
    return hf_tok


def build_model(shape: TinyShape, tokenizer: Any, seed: int = 0, tie_word_embeddings: bool = True) -> Any:
    """A randomly initialised DiffusionGemmaForBlockDiffusion with the checkpoint's sampler defaults."""
    import torch
    from transformers import DiffusionGemmaConfig, DiffusionGemmaForBlockDiffusion, DiffusionGemmaTextConfig
    from transformers.models.diffusion_gemma.generation_diffusion_gemma import (
        DiffusionGemmaGenerationConfig,
        EntropyBoundSamplerConfig,
    )
    from transformers.models.gemma4.configuration_gemma4 import Gemma4VisionConfig

    torch.manual_seed(seed)
    text_config = DiffusionGemmaTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=shape.hidden_size,
        intermediate_size=shape.intermediate_size,
        num_hidden_layers=shape.num_layers,
        num_attention_heads=shape.num_heads,
        num_key_value_heads=shape.num_kv_heads,
        head_dim=shape.head_dim,
        global_head_dim=shape.global_head_dim,
        num_global_key_value_heads=1,
        layer_types=["sliding_attention"] * (shape.num_layers - 1) + ["full_attention"],
        sliding_window=shape.sliding_window,
        max_position_embeddings=shape.max_positions,
        num_experts=shape.num_experts,
        top_k_experts=shape.top_k_experts,
        moe_intermediate_size=shape.moe_intermediate_size,
        use_bidirectional_attention="vision",
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=2,
    )
    # The encoder always builds a vision tower; a minimal one keeps the checkpoint small.
    vision_config = Gemma4VisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        head_dim=16,
        position_embedding_size=64,
        patch_size=16,
    )
    config = DiffusionGemmaConfig(
        text_config=text_config,
        vision_config=vision_config,
        canvas_length=shape.canvas_length,
        image_token_id=tokenizer.convert_tokens_to_ids("<|image|>"),
        boi_token_id=tokenizer.convert_tokens_to_ids("<|image>"),
        eoi_token_id=tokenizer.convert_tokens_to_ids("<image|>"),
        tie_word_embeddings=tie_word_embeddings,
    )
    model = DiffusionGemmaForBlockDiffusion(config).eval()
    model.generation_config = DiffusionGemmaGenerationConfig(
        max_new_tokens=256,
        max_denoising_steps=48,
        sampler_config=EntropyBoundSamplerConfig(entropy_bound=0.1),
        t_min=0.4,
        t_max=0.8,
        stability_threshold=1,
        confidence_threshold=0.005,
        bos_token_id=2,
        eos_token_id=1,
        pad_token_id=0,
    )
    return model


def build_random_checkpoint(out_dir: Path, shape: TinyShape | None = None, seed: int = 0) -> Path:
    """Write a random-weight checkpoint (marked as such) to `out_dir` and return it."""
    shape = shape or TinyShape()
    files = stdlib_sources()
    tokenizer = train_tokenizer((p.read_text(encoding="utf-8", errors="ignore") for p in files), shape.vocab_size)
    model = build_model(shape, tokenizer, seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(out_dir)
    model.save_pretrained(out_dir)
    (out_dir / RANDOM_WEIGHTS_MARKER).write_text(
        "The weights of this checkpoint are random: it writes well-formed but meaningless text.\n", encoding="utf-8"
    )
    return out_dir
