"""The acceptance gate: how likely a finished completion is to be accepted, from a few numbers the engine returns
with it and a few the server computes (does it parse in place, does it repeat the lines above), through a logistic
regression fitted per checkpoint and stored beside it as gate.json (bench/quality/gate.py fits it). One rule comes
on top, not fitted: a completion of several lines that copies a run of the lines just above gets acceptance 0 (the
Quickstart's copy of `fibonacci`'s body into `is_prime`; no held-out task had one, so the fit cannot weigh it).

Pure: plain data in, a probability out. The engine never sees tree-sitter; this module never sees torch.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from diffusion_copilot.engine import FinishReason
from diffusion_copilot.engine.protocol import RunCanvas

from ..context.mode import CompletionMode
from ..context.syntax import has_error_near, parse

FEATURES = (
    "mean_confidence",  # mean probability of the tokens shown
    "min_confidence",  # the least sure of them
    "mean_entropy",  # mean entropy (nats) of their distributions at the last step
    "max_entropy",
    "steps",  # denoising steps taken
    "converged",  # 1 when the canvas stopped stable and confident, 0 at the step cap or deadline
    "hit_eos",  # 1 when the model ended the completion itself
    "parses",  # 1 when prefix + completion + suffix has no syntax error near the completion (1 without a grammar)
    "repeats_above",  # share of the completion's non-blank lines already among the lines just above the cursor
    "log_chars",  # log(1 + non-blank characters shown)
    "lines",  # lines shown
    "rest_of_line",  # the completion mode, one-hot (next lines is the base)
    "whole_body",
)
GATE_VERSION = 1
ABOVE_LINES = 40  # lines above the cursor a completion's lines are looked for in
PARSE_PREFIX_CHARS = 3000  # text around the cursor parsed for the `parses` feature
PARSE_SUFFIX_CHARS = 1000


class GateError(ValueError):
    """A gate file that cannot be used; the message says what is wrong with it."""


@dataclass(frozen=True)
class Gate:
    """A fitted logistic regression over standardized features: p = sigmoid(bias + sum(w * (x - mean) / scale))."""

    features: tuple[str, ...]
    means: tuple[float, ...]
    scales: tuple[float, ...]
    weights: tuple[float, ...]
    bias: float
    threshold: float  # the default minimum predicted acceptance of an automatic completion
    provenance: Mapping[str, Any]

    def acceptance(self, values: Mapping[str, float]) -> float:
        """Predicted probability that a completion with these feature values is accepted."""
        z = self.bias + sum(
            w * (values[name] - m) / s
            for name, m, s, w in zip(self.features, self.means, self.scales, self.weights, strict=True)
        )
        return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


def gate_of(text: str) -> Gate:
    """The gate of a gate.json text; GateError naming the first problem."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as err:
        raise GateError(f"gate.json is not JSON: {err}") from None
    if not isinstance(raw, dict):
        raise GateError("gate.json must hold an object")
    if raw.get("version") != GATE_VERSION:
        raise GateError(f"gate.json version {raw.get('version')!r} is not {GATE_VERSION}: refit it")
    names = raw.get("features")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise GateError("gate.json features must be a non-empty list of names")
    unknown = [n for n in names if n not in FEATURES]
    if unknown:
        raise GateError(f"gate.json names unknown features {unknown}; known: {', '.join(FEATURES)}")
    columns = {key: _numbers(raw, key, len(names)) for key in ("means", "scales", "weights")}
    if any(s <= 0 for s in columns["scales"]):
        raise GateError("gate.json scales must be positive")
    bias, threshold = _number(raw, "bias"), _number(raw, "threshold")
    if not 0.0 <= threshold <= 1.0:
        raise GateError(f"gate.json threshold must lie in [0, 1], not {threshold}")
    provenance = raw.get("provenance", {})
    return Gate(tuple(names), columns["means"], columns["scales"], columns["weights"], bias, threshold,
                provenance if isinstance(provenance, dict) else {})


def _numbers(raw: dict[str, Any], key: str, count: int) -> tuple[float, ...]:
    values = raw.get(key)
    if not isinstance(values, list) or len(values) != count:
        raise GateError(f"gate.json {key} must be a list of {count} numbers, one per feature")
    if not all(_is_finite(v) for v in values):
        raise GateError(f"gate.json {key} must hold finite numbers only")
    return tuple(float(v) for v in values)


def _number(raw: dict[str, Any], key: str) -> float:
    value = raw.get(key)
    if not isinstance(value, int | float) or not _is_finite(value):
        raise GateError(f"gate.json {key} must be a finite number")
    return float(value)


def _is_finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def gate_features(canvas: RunCanvas, healed: str, text: str, prefix: str, suffix: str, language: str,
                  mode: CompletionMode) -> dict[str, float]:
    """The gate's features of `text`, the finished completion made from `canvas` at a cursor between `prefix` and
    `suffix`; token statistics cover the tokens that `text` came from (the canvas less what post-processing cut)."""
    kept = _kept_tokens(canvas, len(healed) + len(text))
    confidence = canvas.confidence[:kept] or (0.0,)
    entropy = canvas.entropy[:kept] or (0.0,)
    shown = [line.strip() for line in text.split("\n") if line.strip()]
    above = {line.strip() for line in prefix.split("\n")[-ABOVE_LINES - 1:-1] if line.strip()}
    return {
        "mean_confidence": sum(confidence) / len(confidence),
        "min_confidence": min(confidence),
        "mean_entropy": sum(entropy) / len(entropy),
        "max_entropy": max(entropy),
        "steps": float(canvas.steps),
        "converged": float(canvas.finish_reason is FinishReason.CONVERGED),
        "hit_eos": float(canvas.hit_eos),
        "parses": float(parses_in_place(text, prefix, suffix, language)),
        "repeats_above": sum(line in above for line in shown) / len(shown) if shown else 0.0,
        "log_chars": math.log1p(len("".join(text.split()))),
        "lines": float(len(text.rstrip("\n").split("\n"))),
        "rest_of_line": float(mode is CompletionMode.REST_OF_LINE),
        "whole_body": float(mode is CompletionMode.WHOLE_BODY),
    }


def _kept_tokens(canvas: RunCanvas, chars: int) -> int:
    """How many leading tokens make up the first `chars` characters of the canvas (all without token spans)."""
    counts = canvas.token_chars if len(canvas.token_chars) == len(canvas.confidence) else ()
    if not counts:
        return len(canvas.confidence)
    total = 0
    for n, count in enumerate(counts, start=1):
        total += count
        if total >= chars:
            return n
    return len(counts)


def parses_in_place(text: str, prefix: str, suffix: str, language: str) -> bool:
    """Whether the text around the cursor with `text` inserted has no syntax error touching `text`; True for a
    language without a grammar (nothing to tell)."""
    head = prefix[-PARSE_PREFIX_CHARS:]
    if len(head) < len(prefix):
        head = head[head.find("\n") + 1:]  # whole lines only
    before = head.encode("utf-8")
    inserted = text.encode("utf-8")
    tree = parse(language, before + inserted + suffix[:PARSE_SUFFIX_CHARS].encode("utf-8"))
    if tree is None:
        return True
    return not has_error_near(tree.root_node, len(before), len(before) + max(len(inserted), 1))


def copies_lines_above(text: str, prefix: str) -> bool:
    """Whether `text` has two or more non-blank lines and they repeat, in order and adjacent, lines just above."""
    shown = [line.strip() for line in text.split("\n") if line.strip()]
    if len(shown) < 2:
        return False
    above = [line.strip() for line in prefix.split("\n")[-ABOVE_LINES - 1:-1] if line.strip()]
    return any(above[i:i + len(shown)] == shown for i in range(len(above) - len(shown) + 1))


def threshold_of(gate: Gate | None, min_acceptance: float | None) -> float:
    """The minimum predicted acceptance an automatic completion needs: the setting, else the gate's own default;
    0 (everything shows) without a gate."""
    if gate is None:
        return 0.0
    return gate.threshold if min_acceptance is None else min_acceptance


def acceptances(gate: Gate | None, canvases: Sequence[RunCanvas | None], healed: str, texts: Sequence[str],
                prefix: str, suffix: str, language: str, mode: CompletionMode) -> tuple[float | None, ...]:
    """The predicted acceptance of each finished text (None for all without a gate, or a text without a canvas;
    0 for a copy of the lines above)."""
    if gate is None:
        return tuple(None for _ in texts)
    return tuple(
        None if canvas is None else 0.0 if copies_lines_above(text, prefix) else
        gate.acceptance(gate_features(canvas, healed, text, prefix, suffix, language, mode))
        for canvas, text in zip(canvases, texts, strict=True)
    )
