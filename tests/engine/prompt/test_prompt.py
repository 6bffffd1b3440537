"""The one prompt layout: order of the parts, token healing, suffix cap and trained-length cap, suffix pins."""

from __future__ import annotations

from typing import Any

import pytest

from diffusion_copilot.engine.prompt.layout import (
    MAX_SUFFIX_TOKENS,
    PREFIX,
    SUFFIX,
    PromptParts,
    encode_prompt,
    indentation_pins,
    strip_healed,
    suffix_pins,
)
from diffusion_copilot.engine.weights.tiny_checkpoint import train_tokenizer

CORPUS = [
    "def add(a, b):\n    return a + b\n\n\nclass Point:\n    def __init__(self, x, y):\n        self.x = x\n",
    "import os\n\nfor name in os.listdir(path):\n    if name.endswith('.py'):\n        print(name)\n",
] * 30


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    return train_tokenizer(iter(CORPUS), 400)


def test_layout_puts_header_context_suffix_then_prefix(tokenizer: Any) -> None:
    parts = PromptParts("pkg/mod.py", "python", "x = 1\ny = ", "\nz = 3\n", context="def f(): ...\n")
    encoded = encode_prompt(tokenizer, parts)
    text = tokenizer.decode(list(encoded.ids))
    assert text == (
        "<bos><|file|>pkg/mod.py<|language|>python<|context|>def f(): ...\n<|suffix|>\nz = 3\n<|prefix|>"
        + parts.prefix[: len(parts.prefix) - len(encoded.healed)]
    )


@pytest.mark.parametrize(
    "prefix",
    [
        "def add(a, b):\n    return a",  # cursor after a whole identifier
        "def add(a, b):\n    ret",  # cursor inside an identifier
        "class Point:\n    def __init__(self, x, y):\n        ",  # cursor in the indentation
        "import os\n",  # cursor at the start of a line
        "x",  # a one-token prefix
    ],
)
def test_healing_drops_the_token_under_the_cursor(tokenizer: Any, prefix: str) -> None:
    encoded = encode_prompt(tokenizer, PromptParts("a.py", "python", prefix))
    kept = list(encoded.ids[encoded.ids.index(tokenizer.convert_tokens_to_ids(PREFIX)) + 1 :])
    assert encoded.healed
    assert tokenizer.decode(kept) + encoded.healed == prefix


def test_empty_prefix_heals_nothing(tokenizer: Any) -> None:
    encoded = encode_prompt(tokenizer, PromptParts("a.py", "python", ""))
    assert encoded.healed == ""
    assert encoded.ids[-1] == tokenizer.convert_tokens_to_ids(PREFIX)


@pytest.mark.parametrize(
    ("text", "healed", "expected"),
    [
        (" a + b", " a", " + b"),
        ("\n        self.y = y", "\n        ", "self.y = y"),
        ("return", "ret", "urn"),
        ("x", "", "x"),
        ("other", "ret", None),
        ("\nimport os", "\n\n", "import os"),  # a blank line left out: the code still starts at column 0
        ("\n    return a", "\n\n", "    return a"),  # "\n   " + " return": the break merged into indentation
        ("\n\n\nx", "\n\n", "\nx"),
        ("import os", "\n\n", None),  # no line break: it would continue the line before the cursor
        (" x", "\n    ", None),
    ],
)
def test_strip_healed(text: str, healed: str, expected: str | None) -> None:
    assert strip_healed(text, healed) == expected


def test_suffix_is_cut_to_its_cap(tokenizer: Any) -> None:
    long_suffix = "\n".join(f"value_{i} = {i}" for i in range(200))
    encoded = encode_prompt(tokenizer, PromptParts("a.py", "python", "x = 1\n", long_suffix))
    ids = list(encoded.ids)
    start, end = ids.index(tokenizer.convert_tokens_to_ids(SUFFIX)), ids.index(tokenizer.convert_tokens_to_ids(PREFIX))
    assert end - start - 1 == MAX_SUFFIX_TOKENS
    assert tokenizer.decode(ids[start + 1 : end]) == tokenizer.decode(
        tokenizer(long_suffix)["input_ids"][:MAX_SUFFIX_TOKENS]
    )


def test_model_max_length_caps_the_prompt_and_keeps_the_nearest_prefix(tokenizer: Any) -> None:
    prefix = "\n".join(f"item_{i} = {i}" for i in range(300))
    full = encode_prompt(tokenizer, PromptParts("a.py", "python", prefix))
    tokenizer.model_max_length = 64
    try:
        capped = encode_prompt(tokenizer, PromptParts("a.py", "python", prefix))
    finally:
        tokenizer.model_max_length = int(1e30)
    assert len(full.ids) > 64 >= len(capped.ids)
    assert capped.ids[-10:] == full.ids[-10:]
    assert capped.healed == full.healed


@pytest.mark.parametrize(
    ("suffix", "canvas", "count", "pinned"),
    [("\n    return x\n", 32, 4, 4), ("", 32, 8, 0), ("\nz = 1\n" * 20, 8, 8, 6)],
)
def test_suffix_pins_hold_the_suffix_head_in_the_canvas_tail(
    tokenizer: Any, suffix: str, canvas: int, count: int, pinned: int
) -> None:
    pins = suffix_pins(tokenizer, suffix, canvas, count)
    assert len(pins) == pinned
    assert [p for p, _ in pins] == list(range(canvas - pinned, canvas))
    assert [t for _, t in pins] == tokenizer(suffix, add_special_tokens=False)["input_ids"][:pinned]


@pytest.mark.parametrize(
    ("prefix", "pinned_text"),
    [("if x:\n    ", "\n   "), ("def f():\n        ", "\n       "), ("x = 1\n", None), ("return a", None)],
)
def test_indentation_pins_spell_the_indentation_as_the_file_would(prefix: str, pinned_text: str | None) -> None:
    from transformers import AutoTokenizer

    from diffusion_copilot.engine.weights.default_model import shipped_model_dir

    tokenizer = AutoTokenizer.from_pretrained(shipped_model_dir())  # merges whole indentation runs
    encoded = encode_prompt(tokenizer, PromptParts("a.py", "python", prefix))
    pins = indentation_pins(tokenizer, encoded.healed)
    if pinned_text is None:
        assert pins == ()
        return
    assert [p for p, _ in pins] == list(range(len(pins)))
    assert tokenizer.decode([t for _, t in pins]) == pinned_text
    # the file's own tokens for this indentation followed by code start with exactly these pins
    file_ids = tokenizer(prefix + "y = 2", add_special_tokens=False)["input_ids"]
    kept = len(encoded.ids) - encoded.ids.index(tokenizer.convert_tokens_to_ids(PREFIX)) - 1
    assert file_ids[kept : kept + len(pins)] == [t for _, t in pins]
