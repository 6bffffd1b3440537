"""Drafts aligned with the cursor, and lines sent once they hold still (pure)."""

from __future__ import annotations

import pytest

from diffusion_copilot.server.api.stream import LineTracker, draft_text, sse


@pytest.mark.parametrize(("raw", "prefix", "healed", "expected"), [
    ("return x\n", "def f(x):\n    ret", None, "urn x\n"),  # the cut half word is re-created
    ("    return x", "def f(x):\n    ", None, "return x"),  # the indentation is re-created
    ("foo()", "x = ", None, "foo()"),  # nothing to strip
    ("ret<eos>junk", "    ret", None, ""),  # special tokens end the draft
    ("    return x", "def f(x):\n    ", "  ", "  return x"),  # the engine said what was healed
])
def test_draft_text(raw: str, prefix: str, healed: str | None, expected: str) -> None:
    assert draft_text(raw, prefix, healed) == expected


def test_a_line_is_sent_once_it_reads_the_same_in_two_drafts() -> None:
    tracker = LineTracker()
    assert tracker.update("a = 1\nb") == []
    assert tracker.update("a = 1\nb = 2\nc") == ["a = 1"]
    assert tracker.update("a = 1\nb = 2\nc = 3") == ["b = 2"]
    assert tracker.update("a = 1\nb = 2\nc = 3\n") == []  # one draft with `c = 3` complete is not enough
    assert tracker.update("a = 1\nb = 2\nc = 3\n") == ["c = 3"]
    assert tracker.sent == ["a = 1", "b = 2", "c = 3"]


def test_lines_are_sent_in_order_and_never_after_one_changed() -> None:
    tracker = LineTracker()
    tracker.update("x\ny\n")
    assert tracker.update("z\ny\n") == []  # line 0 still moving: line 1 waits although it is stable
    assert tracker.update("z\ny\n") == ["z", "y"]
    assert tracker.update("q\ny\n") == [] and tracker.diverged
    assert tracker.update("z\ny\nw\n") == []


def test_sse_framing() -> None:
    assert sse("line", {"text": "é"}) == 'event: line\ndata: {"text":"é"}\n\n'.encode()
