"""Shared fixtures: small DiffusionGemma checkpoints built offline once per test session."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

# The harnesses (real servers, editors and clients the tests drive) live apart from the tests, importable by name.
sys.path.insert(0, str(Path(__file__).parent / "harness"))

# Triton kernels run on the CPU through Triton's interpreter where there is no GPU; it reads the variable when a
# kernel is defined, so it is set before any test imports one.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture(scope="session")
def kernel_device() -> torch.device:
    """Where the Triton kernels run in tests: the GPU where there is one, else the CPU through the interpreter."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight tiny checkpoint saved with save_pretrained, loaded back the way users load models."""
    from diffusion_copilot.engine.weights.tiny_checkpoint import build_random_checkpoint

    return build_random_checkpoint(tmp_path_factory.mktemp("tiny") / "checkpoint")


@pytest.fixture(scope="session")
def converging_checkpoint(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny checkpoint whose canvas converges: every token embeds to the same vector, so the decoder's output
    depends only on positions and the prompt, and the argmax canvas is stable after a few steps."""
    import torch
    from transformers import AutoTokenizer

    from diffusion_copilot.engine.weights.tiny_checkpoint import TinyShape, build_model

    tokenizer = AutoTokenizer.from_pretrained(tiny_checkpoint)
    model = build_model(TinyShape(), tokenizer, seed=1, tie_word_embeddings=False)
    with torch.no_grad():
        row = torch.randn(model.config.text_config.hidden_size)
        for embedding in (model.model.decoder.embed_tokens, model.model.encoder.language_model.embed_tokens):
            embedding.weight.copy_(row.expand_as(embedding.weight))
        model.lm_head.weight.mul_(40)
    out = tmp_path_factory.mktemp("converging") / "checkpoint"
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
