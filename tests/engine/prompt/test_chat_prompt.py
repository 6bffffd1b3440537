"""Prompt layouts: the chat template for instruction-tuned checkpoints, and which layout a tokenizer gets."""

from __future__ import annotations

import pytest
from small_models import CORPUS, GEMMA4_SPECIALS, bpe_tokenizer

from diffusion_copilot.engine.prompt.chat import (
    CHAT_LAYOUT,
    CURSOR,
    DEFAULT_LAYOUT,
    EMPTY_THOUGHT,
    encode_chat_prompt,
    encode_for,
    layout_for,
)
from diffusion_copilot.engine.prompt.layout import PromptParts, encode_prompt, strip_healed


@pytest.fixture(scope="module")
def chat_tokenizer():
    """A Gemma 4 style tokenizer: turn and channel tokens, no prefix/suffix tokens."""
    return bpe_tokenizer(GEMMA4_SPECIALS)


@pytest.fixture(scope="module")
def code_tokenizer():
    """The embedded model's tokenizer layout (engine/weights/tiny_checkpoint.py)."""
    from diffusion_copilot.engine.weights.tiny_checkpoint import train_tokenizer

    return train_tokenizer(iter(CORPUS), 400)


def test_layout_follows_the_tokenizer(chat_tokenizer, code_tokenizer):
    assert layout_for(chat_tokenizer) is CHAT_LAYOUT
    assert layout_for(code_tokenizer) is DEFAULT_LAYOUT
    parts = PromptParts("a.py", "python", "x = 1\n", "")
    assert encode_for(code_tokenizer, parts) == encode_prompt(code_tokenizer, parts)


# (prefix, suffix, context)
CASES = [
    ("def add(a, b):\n    return a", "\n", ""),
    ("def add(a, b):\n", "", ""),
    ("class K:\n    def m(self):\n        pa", "\n\nx = 1\n", "def helper(): ...\n"),
    ("x = 1\n    ", "", ""),
]


@pytest.mark.parametrize(("prefix", "suffix", "context"), CASES)
def test_chat_layout_renders_turns_thought_channel_and_heals(chat_tokenizer, prefix, suffix, context):
    parts = PromptParts("pkg/a.py", "python", prefix, suffix, context)
    encoded = encode_chat_prompt(chat_tokenizer, parts)
    text = chat_tokenizer.decode(list(encoded.ids))
    user = text[: text.index("<turn|>")]
    cursor_line = prefix[prefix.rfind("\n") + 1 :]
    assert text.startswith("<bos><|turn>user\n")
    assert f"{prefix}{CURSOR}{suffix}\n```" in user
    assert ("Definitions from other files" in user) is bool(context)
    # the reply opens a code block and restates the cursor line, less the healed token the canvas re-creates
    assert cursor_line.endswith(encoded.healed) and bool(encoded.healed) is bool(cursor_line)
    reply = cursor_line[: len(cursor_line) - len(encoded.healed)]
    assert text.endswith(f"<turn|>\n<|turn>model\n{EMPTY_THOUGHT}```python\n{reply}")
    assert strip_healed(encoded.healed + "rest", encoded.healed) == "rest"


def test_special_tokens_stay_single_tokens(chat_tokenizer):
    encoded = encode_chat_prompt(chat_tokenizer, PromptParts("a.py", "python", "x = 1\n", ""))
    for token in ("<|turn>", "<turn|>", "<|channel>", "<channel|>", "<bos>"):
        assert chat_tokenizer.convert_tokens_to_ids(token) in encoded.ids


def test_chat_prompt_fits_its_token_budget_and_keeps_the_cursor_side(chat_tokenizer):
    prefix = "".join(f"def f{i}(a, b):\n    return a + b\n" for i in range(200)) + "def last():\n    ret"
    parts = PromptParts("a.py", "python", prefix, "\nx = 1\n" * 200, "def helper(): ...\n" * 100)
    encoded = encode_chat_prompt(chat_tokenizer, parts, max_tokens=512)
    text = chat_tokenizer.decode(list(encoded.ids))
    assert len(encoded.ids) <= 512
    assert "def last():\n    ret<CURSOR>" in text  # the near end of the prefix stays
    assert "def f0(" not in text  # the far end went first
    assert text.endswith("    ret"[: 7 - len(encoded.healed)])


def test_chat_layout_stops_at_the_closing_fence():
    assert "\n```" in CHAT_LAYOUT.stop_sequences and DEFAULT_LAYOUT.stop_sequences == ()
