"""Engine behaviour that completion needs beyond `generate()`: pins, seed canvas, alternatives, cancellation,
the time budget, drafts, confidence, and errors as values."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

import pytest

from diffusion_copilot.engine import Engine, FinishReason, Job, PromptParts, StepControl

PROMPT = (2, 40, 51, 77, 300, 12, 9, 610)


@pytest.fixture(scope="module")
def engine(tiny_checkpoint: Path) -> Engine:
    return Engine.load(str(tiny_checkpoint), device="cpu")


def test_pins_hold_their_tokens(engine: Engine):
    pins = ((0, 500), (5, 501), (15, 502))
    result = engine.run(Job(prompt_ids=PROMPT, canvas_length=16, max_steps=6, alternatives=3, pins=pins, seed=0))
    assert result.error is None
    for canvas in result.canvases:
        padded = list(canvas.token_ids) + [None] * 16
        assert all(padded[position] == token for position, token in pins if position < len(canvas.token_ids))
        assert canvas.token_ids[0] == 500


def test_seed_canvas_changes_the_start_and_same_seed_repeats(engine: Engine):
    job = Job(prompt_ids=PROMPT, canvas_length=16, max_steps=4, seed=5)
    plain = engine.run(job)
    again = engine.run(job)
    seeded = engine.run(
        Job(prompt_ids=PROMPT, canvas_length=16, max_steps=4, seed=5, seed_canvas=tuple(range(100, 116)))
    )
    assert plain.canvases == again.canvases
    assert seeded.canvases != plain.canvases


def test_alternatives_share_one_prompt_and_differ(engine: Engine):
    result = engine.run(Job(prompt_ids=PROMPT, canvas_length=16, max_steps=4, alternatives=4, seed=1))
    assert len(result.canvases) == 4
    assert len({c.token_ids for c in result.canvases}) > 1
    assert result.timings.prefill_tokens == len(PROMPT)
    for canvas in result.canvases:
        assert len(canvas.confidence) == len(canvas.token_ids)
        assert all(0.0 <= p <= 1.0 for p in canvas.confidence)


def test_cancellation_stops_between_steps(engine: Engine):
    steps_seen: list[int] = []
    cancel = threading.Event()

    def on_draft(step: int, drafts: list[list[int]]) -> None:
        steps_seen.append(step)
        if step == 3:
            cancel.set()

    control = StepControl(is_cancelled=cancel.is_set, on_draft=on_draft)
    result = engine.run(Job(prompt_ids=PROMPT, canvas_length=16, max_steps=40, seed=0), control)
    assert result.finish_reason is FinishReason.CANCELLED
    assert result.canvases == ()
    assert steps_seen == [1, 2, 3]


def test_time_budget_returns_the_latest_draft(engine: Engine):
    result = engine.run(Job(prompt_ids=PROMPT, canvas_length=16, max_steps=500, time_budget_s=0.05, seed=0))
    assert result.finish_reason is FinishReason.DEADLINE
    assert 1 <= result.steps < 500
    assert len(result.canvases) == 1 and result.canvases[0].steps == result.steps


def test_drafts_arrive_every_step(engine: Engine):
    drafts: list[list[list[int]]] = []
    result = engine.run(
        Job(prompt_ids=PROMPT, canvas_length=8, max_steps=5, alternatives=2, seed=0),
        StepControl(on_draft=lambda step, d: drafts.append(d)),
    )
    assert len(drafts) == 5 and all(len(d) == 2 and len(d[0]) == 8 for d in drafts)
    assert list(result.canvases[0].token_ids) == drafts[-1][0][: len(result.canvases[0].token_ids)]


@pytest.mark.parametrize(
    ("job", "message"),
    [
        (Job(prompt_ids=()), "empty prompt"),
        (Job(prompt_ids=(10**9,)), "token ids"),
        (Job(prompt_ids=PROMPT, canvas_length=0), "canvas_length"),
        (Job(prompt_ids=PROMPT, alternatives=99), "alternatives"),
        (Job(prompt_ids=PROMPT, canvas_length=8, pins=((8, 3),)), "pins"),
        (Job(prompt_ids=PROMPT, canvas_length=8, seed_canvas=(1, 2)), "seed_canvas"),
        (Job(prompt_ids=PROMPT * 1000, canvas_length=8), "positions"),
    ],
)
def test_bad_jobs_come_back_as_errors(engine: Engine, job: Job, message: str):
    result = engine.run(job)
    assert result.finish_reason is FinishReason.ERROR
    assert result.error is not None and message in result.error


def test_a_seed_out_of_range_fails_only_its_own_job_of_a_batch(engine: Engine):
    good = Job(prompt_ids=PROMPT, canvas_length=8, max_steps=2, seed=3)
    bad, good_result = engine.run_batch([replace(good, seed=2**64), good])
    assert bad.finish_reason is FinishReason.ERROR and bad.error is not None and "seed" in bad.error
    assert good_result.error is None and good_result.canvases
    assert engine.run(replace(good, seed=2**64 - 1)).error is None  # the largest seed a generator takes


def test_complete_encodes_and_reports_healing(engine: Engine):
    parts = PromptParts(path="a.py", language="python", prefix="def add(a, b):\n    ret", suffix="\n")
    result = engine.complete(parts, Job(prompt_ids=(), canvas_length=16, max_steps=3, seed=0))
    assert result.error is None
    assert result.healed and "def add(a, b):\n    ret".endswith(result.healed)
