"""The acceptance gate (server/completion/gate.py): its maths on fixed numbers, gate.json validation, its features,
where the pipeline applies it, and a real completion of the default model that it hides."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from diffusion_copilot.engine import FinishReason
from diffusion_copilot.engine.protocol import RunCanvas, RunReply
from diffusion_copilot.server.completion.gate import (
    FEATURES,
    GateError,
    gate_features,
    gate_of,
    parses_in_place,
    threshold_of,
)
from diffusion_copilot.server.completion.inline import CursorRequest, gated_texts, with_context
from diffusion_copilot.server.context.mode import CompletionMode
from diffusion_copilot.server.settings import Settings, updated

REPO = Path(__file__).parents[3]
SHIPPED_GATE = REPO / "models" / "default" / "gate.json"


def gate_json(**changes: Any) -> str:
    raw = {"version": 1, "features": ["mean_confidence", "parses"], "means": [0.5, 0.5], "scales": [0.25, 0.5],
           "weights": [2.0, -1.0], "bias": 0.5, "threshold": 0.6, "provenance": {"fitted_by": "hand"}}
    return json.dumps(raw | changes)


def test_acceptance_is_the_logistic_of_the_standardized_features() -> None:
    gate = gate_of(gate_json())
    # z = 0.5 + 2 * (0.9 - 0.5) / 0.25 - 1 * (1 - 0.5) / 0.5 = 0.5 + 3.2 - 1 = 2.7
    assert gate.acceptance({"mean_confidence": 0.9, "parses": 1.0}) == pytest.approx(1 / (1 + math.exp(-2.7)))
    # z = 0.5 + 2 * (0.1 - 0.5) / 0.25 + 1 = -1.7: the negative branch of the stable sigmoid
    assert gate.acceptance({"mean_confidence": 0.1, "parses": 0.0}) == pytest.approx(1 / (1 + math.exp(1.7)))
    assert gate.acceptance({"mean_confidence": -1e6, "parses": 0.0}) == 0.0  # no overflow far out
    assert gate.threshold == 0.6 and gate.provenance == {"fitted_by": "hand"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "not JSON"),
        ("[]", "must hold an object"),
        (gate_json(version=2), "version 2 is not 1"),
        (gate_json(features=[]), "non-empty list"),
        (gate_json(features=["mean_confidence", "vibes"]), "unknown features ['vibes']"),
        (gate_json(weights=[1.0]), "weights must be a list of 2 numbers"),
        (gate_json(means=[0.5, "x"]), "means must hold finite numbers"),
        (gate_json(scales=[0.25, 0.0]), "scales must be positive"),
        (gate_json(bias=None), "bias must be a finite number"),
        (gate_json(threshold=1.5), "threshold must lie in [0, 1]"),
        (gate_json(threshold=True), "threshold must be a finite number"),
    ],
)
def test_bad_gate_files_are_refused_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(GateError, match=message.replace("[", r"\[").replace("]", r"\]")):
        gate_of(text)


def test_the_default_model_ships_a_valid_gate_over_every_feature() -> None:
    gate = gate_of(SHIPPED_GATE.read_text(encoding="utf-8"))
    assert gate.features == FEATURES
    assert 0 < gate.threshold < 1
    assert "fit_tasks" in gate.provenance


def test_threshold_is_the_setting_else_the_gates_own_and_zero_without_a_gate() -> None:
    gate = gate_of(gate_json())
    assert threshold_of(gate, None) == 0.6
    assert threshold_of(gate, 0.2) == 0.2
    assert threshold_of(None, 0.9) == 0.0


def canvas(text: str, confidence: tuple[float, ...], chars: tuple[int, ...], steps: int = 9) -> RunCanvas:
    return RunCanvas(text=text, completion=text, confidence=confidence, steps=steps,
                     finish_reason=FinishReason.CONVERGED, hit_eos=True, token_chars=chars,
                     entropy=tuple(1.0 - c for c in confidence))


def test_features_cover_the_tokens_shown_and_see_repeats_and_syntax() -> None:
    prefix = "def f(n):\n    if n < 2:\n        return n\n    "
    # post-processing kept "return n" of "return n\nxyz": only its two tokens count
    raw = canvas("return n\nxyz", (0.9, 0.7, 0.1), (6, 2, 4))
    values = gate_features(raw, "", "return n", prefix, "\n", "python", CompletionMode.NEXT_LINES)
    assert values["mean_confidence"] == pytest.approx(0.8)
    assert values["min_confidence"] == pytest.approx(0.7)
    assert values["max_entropy"] == pytest.approx(0.3)
    assert values["repeats_above"] == 1.0  # `return n` is the line above
    assert values["parses"] == 1.0
    assert values["lines"] == 1.0 and values["log_chars"] == pytest.approx(math.log1p(7))
    assert (values["rest_of_line"], values["whole_body"], values["converged"], values["steps"]) == (0, 0, 1, 9)
    broken = gate_features(canvas("fibonacc((ateinf))]", (0.9,), (19,)), "", "fibonacc((ateinf))]", prefix, "\n",
                           "python", CompletionMode.NEXT_LINES)
    assert broken["parses"] == 0.0 and broken["repeats_above"] == 0.0
    assert set(values) == set(FEATURES)


@pytest.mark.parametrize(
    ("text", "copies"),
    [
        ("    if n < 2:\n        return n", True),  # the Quickstart: fibonacci's body again, in is_prime
        ("    if n < 2:\n        return False", False),
        ("    return n", False),  # one line repeating is common and often right (`return x`, `pass`)
        ("if n < 2:\n\n    return n", True),  # blank lines between do not hide a copy
    ],
)
def test_a_multi_line_copy_of_the_lines_above_gets_acceptance_zero(text: str, copies: bool) -> None:
    from diffusion_copilot.server.completion.gate import acceptances, copies_lines_above

    prefix = 'def fibonacci(n):\n    """Doc."""\n    if n < 2:\n        return n\n\n\ndef is_prime(n):\n    '
    assert copies_lines_above(text, prefix) is copies
    always = gate_of(gate_json(bias=50.0))
    score = acceptances(always, [canvas(text, (0.9,), (len(text),))], "", [text], prefix, "", "python",
                        CompletionMode.WHOLE_BODY)[0]
    assert score == (0.0 if copies else pytest.approx(1.0))


def test_parses_in_place_ignores_errors_far_from_the_completion_and_languages_without_a_grammar() -> None:
    broken_far_above = "x = (\n" + "y = 1\n" * 200
    assert parses_in_place("z = 2", broken_far_above, "\n", "python")
    assert not parses_in_place("z = (2", "y = 1\n", "\nw = 3\n", "python")
    assert parses_in_place("z = (2", "", "", "no-such-language")


def reply_of(*texts: str) -> RunReply:
    return RunReply(canvases=tuple(canvas(t, (0.9,), (len(t),)) for t in texts), healed="",
                    finish_reason=FinishReason.CONVERGED, queue_ms=0, encode_ms=0, prefill_ms=0, total_ms=0, steps=9)


def request(invoked: bool) -> CursorRequest:
    prefix = "def f(n):\n    "
    return with_context(CursorRequest(uri="f.py", path="f.py", language="python", prefix=prefix, suffix="\n",
                                      cursor_offset=len(prefix), invoked=invoked))


def test_the_pipeline_gates_automatic_requests_only() -> None:
    strict = gate_of(gate_json(threshold=0.99))
    texts = ("return n",)
    assert gated_texts(request(False), reply_of(*texts), texts, strict, None) == ()
    assert gated_texts(request(False), reply_of(*texts), texts, strict, 0.0) == texts  # the setting turns it off
    assert gated_texts(request(True), reply_of(*texts), texts, strict, None) == texts  # invoked: always shown
    assert gated_texts(request(False), reply_of(*texts), texts, None, 0.99) == texts  # no gate: no gating
    lenient = gate_of(gate_json(threshold=0.01))
    assert gated_texts(request(False), reply_of(*texts), texts, lenient, None) == texts


@pytest.mark.parametrize(("value", "expected", "warns"), [(None, None, False), (0.4, 0.4, False), (0, 0.0, False),
                                                          (1.5, None, True), ("high", None, True), (True, None, True)])
def test_min_acceptance_setting(value: Any, expected: float | None, warns: bool) -> None:
    settings, warnings = updated(Settings(), {"minAcceptance": value})
    assert settings.min_acceptance == expected
    assert bool(warnings) == warns
    if warns:
        assert "expected a number from 0 to 1, or null" in warnings[0]


NONSENSE_CASES = {
    # the README's Quickstart: the empty body of is_prime (examples/fibonacci.py:9:1)
    "quickstart": (REPO / "examples" / "fibonacci.py").read_text(encoding="utf-8"),
    # issue 17: a docstring and an empty body
    "fibonacci": 'def fibonacci(n):\n    """Return the n-th Fibonacci number."""\n    ',
}


@pytest.fixture(scope="module")
def default_engine() -> Any:
    from diffusion_copilot.engine import Engine

    return Engine.load(None, device="cpu")


@pytest.mark.parametrize("case", sorted(NONSENSE_CASES))
def test_the_gate_hides_the_default_models_nonsense_and_the_setting_shows_it(default_engine: Any, case: str) -> None:
    """A real automatic completion of the default model, through the server's pipeline: the shipped gate hides it,
    minAcceptance 0 shows it."""
    import time

    from diffusion_copilot.engine.protocol import run_reply_of
    from diffusion_copilot.server.completion.inline import (
        context_budget,
        finished_texts,
        postprocess_options,
        run_request,
    )

    prefix = NONSENSE_CASES[case]  # the cursor at the end of the text
    cursor = with_context(CursorRequest(uri="f.py", path="f.py", language="python", prefix=prefix, suffix="",
                                        cursor_offset=len(prefix), invoked=False), None,
                          context_budget(default_engine.max_prompt_tokens, default_engine.chars_per_token))
    settings = Settings(seed=0)
    run = replace(run_request(cursor, settings, pin_healed=False), time_budget_s=None)
    started = time.perf_counter()
    reply = run_reply_of(default_engine.complete(run.prompt, run.job), started, default_engine.decode)
    texts = finished_texts(cursor, reply, postprocess_options(False))[:1]
    assert texts, "the model completed nothing here"
    gate = gate_of(SHIPPED_GATE.read_text(encoding="utf-8"))
    assert gated_texts(cursor, reply, texts, gate, None) == (), f"the gate showed {texts[0]!r}"
    assert gated_texts(cursor, reply, texts, gate, 0.0) == texts


def test_the_language_server_reads_the_gate_from_the_engine_status_once_and_survives_a_bad_one(
        caplog: pytest.LogCaptureFixture) -> None:
    from diffusion_copilot.engine.protocol import EngineState, EngineStatus
    from diffusion_copilot.server.completion.cache import CompletionCache
    from diffusion_copilot.server.completion.inline import InlineCompleter

    completer = InlineCompleter(CompletionCache(), on_engine_error=lambda error: None)
    status = EngineStatus(EngineState.READY, "ready", gate=gate_json())
    gate = completer.gate(status)
    assert gate is not None and gate.threshold == 0.6
    assert completer.gate(status) is gate  # parsed once per gate text
    assert completer.gate(replace(status, gate=None)) is None  # a checkpoint without a gate: not gated
    assert completer.gate(replace(status, gate=gate_json(threshold=7))) is None
    assert "threshold must lie in [0, 1]" in caplog.text
