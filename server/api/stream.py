"""What the HTTP API streams while a canvas denoises: drafts aligned with the cursor, and lines once they hold
still, as server-sent events. Pure: texts in, events out; no I/O.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from diffusion_copilot.engine import strip_healed

from ..completion.postprocess import cut_at_special

STABLE_DRAFTS = 2  # a complete line must read the same in this many drafts in a row to be sent
LAST_PRETOKEN = re.compile(r"(?:\s+|\s?[^\s]+)\Z")  # token healing never cuts more than the last pre-token


def sse(event: str, data: Any) -> bytes:
    """One server-sent event."""
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'), ensure_ascii=False)}\n\n".encode()


def sse_data(data: Any) -> bytes:
    """One unnamed server-sent event (the OpenAI stream dialect)."""
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return f"data: {text}\n\n".encode()


def draft_text(raw: str, prefix: str, healed: str | None = None) -> str:
    """A draft canvas as text to insert at the cursor: special tokens cut, and the characters it re-creates
    before the cursor (token healing) stripped. The engine says which they are with its final reply; until then
    they are the longest end of the prefix's last pre-token that the draft starts with."""
    text = cut_at_special(raw)
    if healed is not None:
        rest = strip_healed(text, healed)
        return text if rest is None else rest
    match = LAST_PRETOKEN.search(prefix)
    tail = match.group() if match else ""
    for start in range(len(tail)):
        if text.startswith(tail[start:]):
            return text[len(tail) - start:]
    return text


@dataclass
class LineTracker:
    """Sends each line of one alternative once it is complete (a newline follows it) and has read the same in
    `stable_drafts` drafts in a row; stops for good when a line already sent changes."""

    stable_drafts: int = STABLE_DRAFTS
    sent: list[str] = field(default_factory=list)
    recent: list[list[str]] = field(default_factory=list)  # complete lines of the latest drafts
    diverged: bool = False

    def update(self, text: str) -> list[str]:
        """The lines that became stable with this draft (possibly none)."""
        complete = text.split("\n")[:-1]
        if complete[: len(self.sent)] != self.sent:
            self.diverged = True
        if self.diverged:
            return []
        self.recent = [*self.recent, complete][-self.stable_drafts:]
        new: list[str] = []
        while len(self.recent) == self.stable_drafts:
            index = len(self.sent)
            candidates = {tuple(lines[index:index + 1]) for lines in self.recent}
            if len(candidates) != 1 or not next(iter(candidates)):
                break
            line = next(iter(candidates))[0]
            self.sent.append(line)
            new.append(line)
        return new
