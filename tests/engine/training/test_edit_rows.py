"""Edit rows teach the default model the next-edit job as the server asks for it: a row's prompt and start canvas
are the engine's edit job for the server's own request, its target is the window as the task expects it, and
batches mix such rows in with their healed characters pinned."""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import pytest
import torch

from diffusion_copilot.engine.prompt.budget import chars_per_token
from diffusion_copilot.engine.prompt.edit import (
    EDIT_CANVAS_TOKENS,
    compact_diff,
    edit_window,
    encode_edit,
    window_chars,
)
from diffusion_copilot.engine.prompt.layout import PREFIX
from diffusion_copilot.engine.training.batches import EOS_ID, PAD_ID, BatchPlan, DeviceCorpus
from diffusion_copilot.engine.training.corpus import SourceFile
from diffusion_copilot.engine.training.dataset import tokenize_corpus
from diffusion_copilot.engine.training.edit_rows import build_edit_rows, edit_row
from diffusion_copilot.engine.training.edits import EditKind, edit_tasks
from diffusion_copilot.engine.weights.tiny_checkpoint import train_tokenizer
from diffusion_copilot.server.completion.next_edit import EditRequest, edit_run_request
from diffusion_copilot.server.settings import Settings

SOURCE = (
    "def area(width, height):\n    scale = width * height\n    return scale * width\n\n\n"
    "def total(items, start):\n    result = start\n    for item in items:\n        result = result + item\n"
    "    return result\n\n\n"
    "def show(points):\n    draw(points[0], color=1)\n    draw(points[1], color=1)\n    draw(points[2], color=1)\n\n\n"
    "print(area(3, 4), total([1, 2], 0))\n"
)
FILES = [SourceFile(f"pkg/m{i}.py", "test", "MIT", "python", SOURCE.replace("area", f"area{i}")) for i in range(6)]
PROMPT_SLOTS = 256


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    return train_tokenizer(iter([SOURCE] * 40), 400)


def test_a_row_is_the_engine_edit_job_of_the_servers_request(tokenizer: Any) -> None:
    per_token = chars_per_token(tokenizer)
    tasks = edit_tasks(SOURCE, random.Random(0), 400)
    assert {t.kind for t in tasks} >= {EditKind.RENAME, EditKind.NO_CHANGE}
    rows = 0
    for task in tasks:
        row = edit_row(tokenizer, "pkg/m.py", task, PROMPT_SLOTS, per_token)
        if row is None:
            continue
        rows += 1
        prompt, start, target, pinned = row
        document = task.document
        request = EditRequest(
            uri="file:///w/pkg/m.py",
            path="pkg/m.py",
            language="python",
            text=document,
            cursor_offset=task.cursor,
            recent_diff=compact_diff(task.before, document),
        )
        window = edit_window(document, task.cursor, window_chars(EDIT_CANVAS_TOKENS, per_token))
        run = edit_run_request(request, window, Settings())
        assert run.edit is not None and run.canvas_length == EDIT_CANVAS_TOKENS
        served = encode_edit(
            tokenizer,
            run.prompt,
            replace(run.edit, renoise=0.0),
            EDIT_CANVAS_TOKENS,
            len(tokenizer),
            max_tokens=PROMPT_SLOTS,
        )
        assert prompt == list(served.ids) and start == list(served.seed_canvas) and pinned == len(served.pins)
        assert target[:pinned] == start[:pinned]  # the healed characters: held fixed
        body = target[pinned : target.index(EOS_ID)]
        grown = len(task.expected_document) - len(document)
        assert tokenizer.decode(body) == task.expected_document[window.start : window.end + grown]
        assert all(t == PAD_ID for t in target[target.index(EOS_ID) + 1 :])
        if task.kind == EditKind.NO_CHANGE:
            assert target == start
    assert rows >= 2


def test_batches_mix_in_edit_rows_with_their_healed_characters_pinned(tokenizer: Any) -> None:
    edits = build_edit_rows(tokenizer, FILES, 50, PROMPT_SLOTS, chars_per_token(tokenizer), seed=0)
    assert len(edits) > 0 and sum(edits.kinds.values()) == len(edits)
    assert edits.kinds["no_change"] <= 0.3 * len(edits)  # the files offer more; most rows teach an edit
    corpus = tokenize_corpus(tokenizer, FILES, workers=1)
    data = DeviceCorpus(corpus, torch.device("cpu"), len(tokenizer), tokenizer.convert_tokens_to_ids(PREFIX), edits)
    plan = BatchPlan(rows=64, prompt_slots=PROMPT_SLOTS, canvas_slots=EDIT_CANVAS_TOKENS, edit_rate=0.5)
    batch = data.batch(plan, torch.Generator().manual_seed(0))
    is_edit = batch.canvas_len == EDIT_CANVAS_TOKENS
    assert batch.is_edit is not None and torch.equal(batch.is_edit, is_edit)  # what the edit rows' own loss reads
    assert 10 < int(is_edit.sum()) < 54
    assert set(batch.canvas_len[~is_edit].tolist()) <= {32, 64}  # completion rows keep their canvases
    pairs = zip(edits.prompts.tolist(), edits.target.tolist(), strict=True)
    bank = {(tuple(p), tuple(t)): i for i, (p, t) in enumerate(pairs)}  # identical rows: any one of them
    for row in torch.nonzero(is_edit).flatten().tolist():
        index = bank[(tuple(batch.tokens[row, :PROMPT_SLOTS].tolist()), tuple(batch.targets[row].tolist()))]
        pinned = int(edits.pinned[index])
        assert int(batch.prompt_len[row]) == int(edits.prompt_len[index])
        mask = batch.loss_mask[row].tolist()
        assert not any(mask[:pinned]) and all(mask[pinned:])
        canvas = batch.tokens[row, PROMPT_SLOTS:]
        assert canvas[:pinned].tolist() == edits.start[index, :pinned].tolist()
    with pytest.raises(ValueError, match="canvas slots"):
        data.batch(replace(plan, canvas_slots=64), torch.Generator().manual_seed(0))
