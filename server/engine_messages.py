"""The values that cross the socket to the engine process, on the client side: a `RunRequest` out, a
`RunReply` or an `EngineError` back (docs/protocol.md). Plain data; no I/O here.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class EngineError:
    """Why the engine gave no result; `code` is one of the protocol's error codes."""

    code: str
    message: str


@dataclass(frozen=True)
class PromptSpec:
    """What the model is told about the cursor (the engine turns it into token ids)."""

    path: str
    language: str
    prefix: str
    suffix: str = ""
    context: str = ""


@dataclass(frozen=True)
class RunRequest:
    """One completion job."""

    prompt: PromptSpec
    canvas_length: int = 32
    max_steps: int | None = None
    alternatives: int = 1
    time_budget_s: float | None = None
    seed: int | None = None
    pin_healed: bool = False  # pin the characters token healing cut, so every canvas re-creates them
    drafts: bool = False  # the engine sends the argmax canvas texts after every step


@dataclass(frozen=True)
class RunCanvas:
    """One alternative: the raw canvas text, and the text to insert (None when it does not re-create the
    characters the prompt cut from the prefix)."""

    text: str
    completion: str | None
    confidence: tuple[float, ...]  # per token
    steps: int
    finish_reason: str
    hit_eos: bool
    token_chars: tuple[int, ...] = ()  # characters of `text` each token adds; () from an engine that does not say

    @property
    def token_texts(self) -> tuple[str, ...] | None:
        """The text each token adds (joined: `text`), one per confidence value; None when the engine did not say."""
        counts = self.token_chars
        if not counts or len(counts) != len(self.confidence) or sum(counts) != len(self.text) or min(counts) < 0:
            return None
        ends = itertools.accumulate(counts)
        return tuple(self.text[end - count:end] for end, count in zip(ends, counts, strict=True))


@dataclass(frozen=True)
class RunReply:
    """The engine's answer to a `RunRequest`, with where its time went."""

    canvases: tuple[RunCanvas, ...]
    healed: str
    finish_reason: str
    queue_ms: float
    encode_ms: float
    prefill_ms: float
    total_ms: float
    steps: int


def run_params(request: RunRequest) -> dict[str, Any]:
    """The `params` of a `run` request."""
    p = request.prompt
    return {
        "prompt": {"path": p.path, "language": p.language, "prefix": p.prefix, "suffix": p.suffix,
                   "context": p.context},
        "canvas_length": request.canvas_length,
        "max_steps": request.max_steps,
        "alternatives": request.alternatives,
        "time_budget_s": request.time_budget_s,
        "seed": request.seed,
        "pin_healed": request.pin_healed,
        "drafts": request.drafts,
    }


def run_reply(raw: dict[str, Any]) -> RunReply | EngineError:
    """A `RunReply` from a `run` result, or an `EngineError` when the result is malformed."""
    try:
        timings = raw["timings"]
        canvases = tuple(
            RunCanvas(text=str(c["text"]), completion=c["completion"],
                      confidence=tuple(float(p) for p in c["confidence"]), steps=int(c["steps"]),
                      finish_reason=str(c["finish_reason"]), hit_eos=bool(c["hit_eos"]),
                      token_chars=tuple(int(n) for n in c.get("token_chars", ())))
            for c in raw["canvases"]
        )
        return RunReply(canvases=canvases, healed=str(raw["healed"]), finish_reason=str(raw["finish_reason"]),
                        queue_ms=float(timings["queue_ms"]), encode_ms=float(timings["encode_ms"]),
                        prefill_ms=float(timings["prefill_ms"]), total_ms=float(timings["total_ms"]),
                        steps=int(timings["steps"]))
    except (KeyError, TypeError, ValueError) as err:
        return EngineError("bad_reply", f"malformed reply from the engine: {err!r}")
