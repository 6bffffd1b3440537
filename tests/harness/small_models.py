"""Small pieces the engine's tests share: a BPE tokenizer with a chosen set of special tokens, the decoder logits
of a fixed prompt and canvas for comparing a fast path with the stock model, a random MoE routing with the
tolerance a kernel is held to, and a random checkpoint wide enough for int4's groups."""

from __future__ import annotations

from typing import Any

import torch
from transformers import DynamicCache

from diffusion_copilot.engine.hf_internals import with_cache

GEMMA4_SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "<|turn>", "<turn|>", "<|channel>", "<channel|>"]
CORPUS = [
    "def add(a, b):\n    return a + b\n",
    "Complete the code at the cursor in the python file.\n",
    "class K:\n    def m(self):\n        pass\n",
    "```python\nx = 1\n```\n",
] * 20


def bpe_tokenizer(specials: list[str]) -> Any:
    """A byte-level BPE tokenizer trained on CORPUS with `specials` (the first five: pad, eos, bos, unk, mask)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=specials,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(CORPUS, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
        additional_special_tokens=specials[5:],
    )


def decoder_logits(model: Any) -> torch.Tensor:
    """The decoder's logits for a fixed 16-token canvas after a fixed 8-token prompt, for comparing kernels."""
    device = model.device
    prompt = torch.tensor([[2, 40, 51, 77, 300, 12, 9, 610]], device=device)
    canvas = torch.randint(3, 1000, (1, 16), generator=torch.Generator().manual_seed(3)).to(device)
    with torch.inference_mode():
        cache = DynamicCache(config=model.config.get_text_config(decoder=True))
        model.model.encoder(input_ids=prompt, position_ids=torch.arange(8, device=device)[None], **with_cache(cache))
        positions = torch.arange(8, 24, device=device)[None]
        return model(decoder_input_ids=canvas, decoder_position_ids=positions, **with_cache(cache)).logits


def kernel_tolerance(dtype: torch.dtype, device: torch.device) -> float:
    """float32 is exact to rounding on the CPU; on a GPU its matmuls run in TF32, with 10 mantissa bits."""
    return 1e-4 if dtype == torch.float32 and device.type == "cpu" else 2e-2


def random_routing(tokens: int, experts: int, top_k: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A [tokens, top_k] routing (expert index, normalized weight) in which some experts get no pairs at all."""
    generator = torch.Generator().manual_seed(seed)
    scores = torch.randn(tokens, experts, generator=generator)
    scores[:, : experts // 4] -= 4
    weights, index = scores.softmax(-1).topk(top_k, dim=-1)
    return index, weights / weights.sum(-1, keepdim=True)


def wide_checkpoint(tiny_checkpoint: Any, out: Any, moe_intermediate_size: int = 128, seed: int = 2) -> Any:
    """A random checkpoint with the tiny one's tokenizer but layers wide enough for int4's groups (hidden 128, expert
    width `moe_intermediate_size`), saved to `out`."""
    from transformers import AutoTokenizer

    from diffusion_copilot.engine.weights.tiny_checkpoint import TinyShape, build_model

    tokenizer = AutoTokenizer.from_pretrained(tiny_checkpoint)
    shape = TinyShape(
        hidden_size=128,
        intermediate_size=128,
        moe_intermediate_size=moe_intermediate_size,
        num_layers=2,
        head_dim=32,
        global_head_dim=32,
    )
    build_model(shape, tokenizer, seed=seed).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
