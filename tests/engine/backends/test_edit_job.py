"""Edit jobs (engine/prompt/edit.py): the seeded, partly renoised canvas, its pins, both prompt layouts, and the
engine running one on the tiny checkpoint and on the shipped default model."""

from __future__ import annotations

from pathlib import Path

import pytest
from small_models import GEMMA4_SPECIALS, bpe_tokenizer
from transformers import AutoTokenizer

from diffusion_copilot.engine import Engine, FinishReason, Job
from diffusion_copilot.engine.prompt.chat import EMPTY_THOUGHT
from diffusion_copilot.engine.prompt.edit import EDIT_OPEN, EditWindow, encode_edit, renoised
from diffusion_copilot.engine.prompt.layout import PromptParts

PARTS = PromptParts(path="a.py", language="python", prefix="import os\n\n", suffix="\nprint(total([1]))\n")
WINDOW = "def total(items):\n    return sum(xs)\n"
DIFF = "@@ -1 +1 @@\n-def total(xs):\n+def total(items):\n"


@pytest.fixture(scope="module")
def code_tokenizer(tiny_checkpoint: Path):
    return AutoTokenizer.from_pretrained(tiny_checkpoint)


def ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def test_default_layout_seeds_the_canvas_with_the_window(code_tokenizer) -> None:
    edit = encode_edit(code_tokenizer, PARTS, EditWindow(WINDOW, DIFF, renoise=0.0), 64, 1000, seed=1)
    healed_ids = ids(code_tokenizer, edit.healed)
    window_ids = ids(code_tokenizer, WINDOW)
    start = len(healed_ids)
    assert edit.seed_canvas[:start] == tuple(healed_ids)
    assert edit.seed_canvas[start : start + len(window_ids)] == tuple(window_ids)
    assert edit.seed_canvas[start + len(window_ids)] == code_tokenizer.eos_token_id
    assert set(edit.seed_canvas[start + len(window_ids) + 1 :]) == {code_tokenizer.pad_token_id}
    assert len(edit.seed_canvas) == 64
    assert edit.pins == tuple(enumerate(healed_ids))  # the healed characters must not change
    prompt = code_tokenizer.decode(list(edit.ids))
    assert "-def total(xs):" in prompt and "+def total(items):" in prompt  # the recent edit, as a diff
    assert "print(total([1]))" in prompt  # the text after the window


def test_renoise_replaces_the_asked_share_and_repeats_with_its_seed() -> None:
    window = list(range(100, 140))
    noisy = renoised(window, 0.25, 50, seed=7)
    assert sum(a != b for a, b in zip(window, noisy, strict=True)) <= 10
    assert sum(t < 50 for t in noisy) == 10  # every renoised position took a random token
    assert renoised(window, 0.25, 50, seed=7) == noisy
    assert renoised(window, 0.0, 50, seed=7) == window


def test_a_window_larger_than_the_canvas_is_refused(code_tokenizer) -> None:
    with pytest.raises(ValueError, match="canvas holds 8"):
        encode_edit(code_tokenizer, PARTS, EditWindow(WINDOW * 4), 8, 1000)


def test_chat_layout_names_the_window_in_an_instruction() -> None:
    tokenizer = bpe_tokenizer(GEMMA4_SPECIALS)
    edit = encode_edit(tokenizer, PARTS, EditWindow(WINDOW, DIFF, renoise=0.0), 96, 400)
    prompt = tokenizer.decode(list(edit.ids))
    assert "editable window" in prompt and f"{EDIT_OPEN}\n{WINDOW}" in prompt
    assert prompt.endswith(f"{EMPTY_THOUGHT}```python\n")
    assert "+def total(items):" in prompt
    canvas = tokenizer.decode([t for t in edit.seed_canvas if t != tokenizer.pad_token_id], skip_special_tokens=True)
    assert canvas == WINDOW + "```"  # the window, then the reply's closing fence
    assert edit.healed == "" and edit.pins == ()


@pytest.fixture(scope="module")
def engine(tiny_checkpoint: Path) -> Engine:
    return Engine.load(str(tiny_checkpoint), device="cpu")


def test_engine_runs_an_edit_job_from_the_seeded_canvas(engine: Engine) -> None:
    job = Job(prompt_ids=(), canvas_length=48, max_steps=4, seed=3)
    window = EditWindow(WINDOW, DIFF, renoise=0.25)
    [result] = engine.complete_batch([PARTS], [job], edits=[window])
    assert result.error is None and result.steps >= 1
    assert result.canvases[0].text.startswith(result.healed)  # the pinned healed characters come first
    [again] = engine.complete_batch([PARTS], [job], edits=[window])
    assert again.canvases[0].token_ids == result.canvases[0].token_ids  # seeded: the same rewrite


def test_engine_reports_a_window_that_does_not_fit(engine: Engine) -> None:
    [result] = engine.complete_batch([PARTS], [Job(prompt_ids=(), canvas_length=8)], edits=[EditWindow(WINDOW * 4)])
    assert result.finish_reason is FinishReason.ERROR and "edit" in (result.error or "")


@pytest.mark.slow
def test_default_model_keeps_an_unrenoised_window_that_needs_no_change() -> None:
    """The shipped model, never trained to edit, still reads its seeded canvas: with nothing renoised and no
    recent edit, a plain window comes back mostly as it was (the no-op the server needs to be common)."""
    from diffusion_copilot.engine.weights.default_model import shipped_model_dir

    engine = Engine.load(str(shipped_model_dir()), device="cpu")
    window = "def add(a, b):\n    return a + b\n"
    parts = PromptParts(path="m.py", language="python", prefix="import math\n\n", suffix="\nprint(add(1, 2))\n")
    [result] = engine.complete_batch(
        [parts],
        [Job(prompt_ids=(), canvas_length=32, max_steps=8, seed=0)],
        edits=[EditWindow(window, "", renoise=0.0)],
    )
    assert result.error is None
    text = result.canvases[0].text[len(result.healed) :]
    assert text.splitlines()[0] == "def add(a, b):"
