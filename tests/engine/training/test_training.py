"""Training the default model: the fused forward equals the transformers encoder + decoder, batches follow the
prompt layout and canvas convention, spans heal like the prompt builder, licences are checked, and the shipped
checkpoint loads and completes through the engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from diffusion_copilot.engine.hf_internals import output_cache, with_cache
from diffusion_copilot.engine.prompt.layout import PREFIX
from diffusion_copilot.engine.training.batches import EOS_ID, PAD_ID, BatchPlan, DeviceCorpus
from diffusion_copilot.engine.training.corpus import SourceFile, is_permissive
from diffusion_copilot.engine.training.dataset import token_spans, tokenize_corpus
from diffusion_copilot.engine.training.forward import canvas_logits, soft_embedding
from diffusion_copilot.engine.training.spans import Lines, SpanKind, block_spans
from diffusion_copilot.engine.weights.tiny_checkpoint import TinyShape, build_model, train_tokenizer

SOURCES = [
    "import os\n\n\ndef read(path):\n    with open(path) as handle:\n        return handle.read()\n\n\n"
    "class Point:\n    def __init__(self, x, y):\n        self.x = x\n        self.y = y\n\n"
    "    def norm(self):\n        return (self.x ** 2 + self.y ** 2) ** 0.5\n",
    "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n\n\n"
    "for i in range(10):\n    print(fib(i))\n",
] * 4


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    return train_tokenizer(iter(SOURCES * 10), 400)


@pytest.fixture(scope="module")
def model(tokenizer: Any) -> Any:
    torch.manual_seed(0)
    built = build_model(TinyShape(vocab_size=len(tokenizer), sliding_window=8), tokenizer).float()
    with torch.no_grad():  # move the norms off 1.0 so that every weight matters
        for parameter in built.parameters():
            if parameter.dim() == 1:
                parameter.add_(torch.randn_like(parameter) * 0.3)
    return built


def test_fused_forward_equals_encoder_then_decoder(model: Any) -> None:
    vocab, prompt_slots, canvas_slots = int(model.config.text_config.vocab_size), 20, 8
    generator = torch.Generator().manual_seed(1)
    prompt_lens, canvas_lens = [13, 20], [4, 8]  # both prompts longer than the sliding window of 8
    rows, signals, references = [], [], []
    for prompt_len, canvas_len in zip(prompt_lens, canvas_lens, strict=True):
        prompt = torch.randint(3, vocab, (1, prompt_len), generator=generator)
        canvas = torch.randint(0, vocab, (1, canvas_len), generator=generator)
        sc_logits = torch.randn(1, canvas_len, vocab, generator=generator)
        with torch.no_grad():
            cache = output_cache(
                model.model.encoder(input_ids=prompt, position_ids=torch.arange(prompt_len)[None], use_cache=True)
            )
            references.append(
                model(
                    decoder_input_ids=canvas,
                    self_conditioning_logits=sc_logits,
                    **with_cache(cache),
                    decoder_position_ids=torch.arange(prompt_len, prompt_len + canvas_len)[None],
                ).logits[0]
            )
        row = torch.zeros(prompt_slots + canvas_slots, dtype=torch.long)
        row[prompt_slots - prompt_len : prompt_slots] = prompt[0]
        row[prompt_slots : prompt_slots + canvas_len] = canvas[0]
        signal = torch.zeros(canvas_slots, vocab)
        signal[:canvas_len] = sc_logits[0]
        rows.append(row)
        signals.append(signal)
    with torch.no_grad():
        fused = canvas_logits(
            model,
            torch.stack(rows),
            torch.tensor(prompt_lens),
            torch.tensor(canvas_lens),
            prompt_slots,
            soft_embedding(model, torch.stack(signals)),
        )
    for index, reference in enumerate(references):
        torch.testing.assert_close(fused[index, : canvas_lens[index]], reference, atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize(
    ("cursor", "end", "first", "last"),
    [(4, 9, 0, 2), (5, 9, 0, 2), (6, 12, 1, 3), (9, 12, 1, 3)],  # token starts 0, 5, 9, 12
)
def test_token_spans_start_one_token_before_a_boundary_cursor(cursor: int, end: int, first: int, last: int) -> None:
    starts = np.array([0, 5, 9, 12])
    got_first, got_last = token_spans(starts, np.array([cursor]), np.array([end]))
    assert (int(got_first[0]), int(got_last[0])) == (first, last)


def test_block_spans_cover_the_whole_body() -> None:
    text = "def f(x):\n    y = x + 1\n\n    return y\n\nz = f(1)\n"
    spans = block_spans(Lines.of(text), "python", 5, __import__("random").Random(0))
    assert spans and all(s.kind is SpanKind.BLOCK for s in spans)
    assert all(text[s.cursor : s.end].rstrip().endswith("return y") for s in spans)


@pytest.mark.parametrize(
    ("license_text", "allowed"),
    [
        ("MIT", True),
        ("BSD-3-Clause", True),
        ("Apache Software License", True),
        ("PSF-2.0", True),
        ("BSD-3-Clause AND 0BSD AND MIT AND Zlib AND CC0-1.0", True),
        ("GPL-3.0-or-later", False),
        ("LGPLv3", False),
        ("MIT AND GPL-2.0", False),
        ("MPL-2.0 AND MIT", False),
        ("unknown", False),
        ("Proprietary", False),
    ],
)
def test_only_permissive_licences_are_used(license_text: str, allowed: bool) -> None:
    assert is_permissive(license_text) is allowed


def test_batches_follow_the_layout_and_canvas_convention(tokenizer: Any) -> None:
    files = [SourceFile(f"pkg/m{i}.py", "test", "MIT", "python", text) for i, text in enumerate(SOURCES)]
    corpus = tokenize_corpus(tokenizer, files, workers=1)
    prefix_id = tokenizer.convert_tokens_to_ids(PREFIX)
    data = DeviceCorpus(corpus, torch.device("cpu"), len(tokenizer), prefix_id)
    plan = BatchPlan(rows=64, prompt_slots=48, canvas_slots=16, short_canvas=8, pinned_rate=0.5)
    batch = data.batch(plan, torch.Generator().manual_seed(0))
    assert batch.tokens.shape == (64, 64) and batch.targets.shape == (64, 16)
    for row in range(64):
        prompt_len, canvas_len = int(batch.prompt_len[row]), int(batch.canvas_len[row])
        prompt = batch.tokens[row, : plan.prompt_slots].tolist()
        assert prompt[: plan.prompt_slots - prompt_len] == [PAD_ID] * (plan.prompt_slots - prompt_len)
        assert tokenizer.decode(prompt[plan.prompt_slots - prompt_len :]).startswith("<bos><|file|>pkg/m")
        assert prompt.count(prefix_id) == 1
        targets, mask = batch.targets[row].tolist(), batch.loss_mask[row].tolist()
        assert targets[canvas_len:] == [PAD_ID] * (16 - canvas_len) and not any(mask[canvas_len:])
        pinned = canvas_len - sum(mask)
        if EOS_ID in targets:
            eos = targets.index(EOS_ID)
            assert all(t == PAD_ID for t in targets[eos + 1 : canvas_len - pinned])
        else:
            assert pinned == 0 and PAD_ID not in targets[:canvas_len]
        canvas = batch.tokens[row, plan.prompt_slots :].tolist()
        assert canvas[canvas_len - pinned : canvas_len] == targets[canvas_len - pinned : canvas_len]
    assert (batch.loss_mask.sum(1) < batch.canvas_len).any()  # some rows pin the suffix


def test_shipped_default_model_loads_and_completes() -> None:
    from diffusion_copilot.engine import Engine, Job, PromptParts, strip_healed
    from diffusion_copilot.engine.weights.default_model import shipped_model_dir

    directory = shipped_model_dir()
    assert directory is not None
    assert (Path(directory) / "model.safetensors").stat().st_size <= 32_000_000
    engine = Engine.load(None, device="cpu")
    assert not engine.has_random_weights
    assert engine.loaded.tokenizer.convert_tokens_to_ids(["<pad>", "<eos>", "<bos>"]) == [0, 1, 2]
    encoded = engine.encode(
        PromptParts("m.py", "python", "class Point:\n    def __init__(self, x, y):\n        self.x = x\n")
    )
    result = engine.run(Job(prompt_ids=encoded.ids, canvas_length=32, max_steps=16, seed=0))
    text = strip_healed(result.canvases[0].text, encoded.healed)
    assert result.error is None and text is not None
    assert "self." in text  # random weights write noise; the trained model continues the method body


@pytest.mark.slow
def test_training_run_saves_a_checkpoint_the_engine_loads(tmp_path: Path) -> None:
    from diffusion_copilot.engine import Engine, Job, PromptParts
    from diffusion_copilot.engine.training.train import TrainConfig, train

    config = TrainConfig(
        minutes=0.05,
        shape=TinyShape(vocab_size=512),
        plan=BatchPlan(rows=4, prompt_slots=64),
        max_files=40,
        compile=False,
        tokenizer_chars=400_000,
        held_out_sample=5,
    )
    summary = train(config, tmp_path, torch.device("cpu"))
    assert summary["steps"] >= 1 and (tmp_path / "train_log.jsonl").read_text().strip()
    assert sum(summary["edit_rows"].values()) > 0  # next-edit rows were built and mixed in
    engine = Engine.load(str(tmp_path / "checkpoint"), device="cpu")
    assert engine.loaded.tokenizer.model_max_length == 64
    encoded = engine.encode(PromptParts("a.py", "python", "x = 1\n"))
    assert engine.run(Job(prompt_ids=encoded.ids, canvas_length=8, max_steps=2, seed=0)).error is None
