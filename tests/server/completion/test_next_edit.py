"""Next-edit logic without an engine: the window, the recent edit's diff, minimal edits and the no-op gates."""

from __future__ import annotations

import itertools

import pytest

from diffusion_copilot.engine import FinishReason
from diffusion_copilot.engine.prompt.edit import Window, compact_diff, edit_window
from diffusion_copilot.engine.protocol import RunCanvas, RunReply
from diffusion_copilot.server.completion.edits import (
    TextEdit,
    accepted_edits,
    applied,
    diff_words,
    minimal_edits,
    rewritten_window,
)
from diffusion_copilot.server.completion.next_edit import EditHistory, EditRequest, suggested_edits

BEFORE = "def total(xs):\n    s = 0\n    for x in xs:\n        s += x\n    return s\n"
RENAMED = BEFORE.replace("def total(xs)", "def total(items)")  # the recent edit: one site renamed
FOLLOWED = RENAMED.replace("in xs:", "in items:")  # what should follow


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("a\nb\n", "a\nb\n", ()),  # no change: no edit
    ("x = xs\n", "x = items\n", (TextEdit(4, 6, "items"),)),  # trimmed to the differing characters
    ("a\nb\nc\n", "a\nB\nc\n", (TextEdit(2, 3, "B"),)),
    ("a\nc\n", "a\nb\nc\n", (TextEdit(2, 2, "b\n"),)),  # a pure insertion
    ("a\nb\nc\n", "a\nc\n", (TextEdit(2, 4, ""),)),  # a pure deletion
    ("f(xs)\nmid\ng(xs)\n", "f(ys)\nmid\ng(ys)\n", (TextEdit(2, 4, "ys"), TextEdit(12, 14, "ys"))),  # whole tokens
    ("a", "ab", (TextEdit(0, 1, "ab"),)),  # no final newline; a changed token is replaced whole
    ("", "x\n", (TextEdit(0, 0, "x\n"),)),
])
def test_minimal_edits(old: str, new: str, expected: tuple[TextEdit, ...]) -> None:
    edits = minimal_edits(old, new)
    assert edits == expected
    assert applied(old, edits) == new


@pytest.mark.parametrize("offset", [0, 7, 100])
def test_minimal_edits_apply_at_the_window_offset(offset: int) -> None:
    head = "#" * offset
    edits = minimal_edits(RENAMED, FOLLOWED, offset)
    assert applied(head + RENAMED, edits) == head + FOLLOWED
    assert len(edits) == 1 and edits[0].text == "items"


def test_minimal_edits_round_trip_on_random_rewrites() -> None:
    import random

    rng = random.Random(0)
    alphabet = "ab\n x"
    for _ in range(300):
        old = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 30)))
        new = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 30)))
        edits = minimal_edits(old, new)
        assert applied(old, edits) == new
        assert all(a.end <= b.start for a, b in itertools.pairwise(edits))  # in order, not overlapping


def test_window_takes_whole_lines_around_the_cursor_within_the_budget() -> None:
    text = "".join(f"line {i}\n" for i in range(20))  # 7 characters a line
    cursor = text.index("line 10") + 2
    window = edit_window(text, cursor, 38)  # lines 8 and 9 are 7 characters, 10 to 12 are 8
    assert text[window.start:window.end] == "".join(f"line {i}\n" for i in range(8, 13))
    window = edit_window(text, cursor, 37)  # line 12 does not fit, line 7 above it still does
    assert text[window.start:window.end] == "".join(f"line {i}\n" for i in range(7, 12))
    assert edit_window(text, 0, 21) == Window(0, 21)  # at the top: all below
    assert edit_window(text, len(text), 1000) == Window(0, len(text))  # everything fits
    assert edit_window("x" * 50, 3, 10) == Window(0, 10)  # one long line: cut


def test_compact_diff_and_its_words() -> None:
    diff = compact_diff(BEFORE, RENAMED)
    assert diff.startswith("@@") and "-def total(xs):\n" in diff and "+def total(items):\n" in diff
    assert "---" not in diff and "return s" not in diff  # one line of context, no headers
    assert diff_words(diff) == (frozenset({"xs"}), frozenset({"items"}))
    assert compact_diff(BEFORE, BEFORE) == ""


def test_history_gives_the_change_since_the_last_pause() -> None:
    history = EditHistory()
    history.opened("u", BEFORE)
    diff = history.recent_diff("u", RENAMED)
    assert "+def total(items):" in diff
    assert history.recent_diff("u", RENAMED) == diff  # asked again, unchanged: the same recent edit
    assert "+    for x in items:" in history.recent_diff("u", FOLLOWED)
    assert history.recent_diff("new", "x") == ""  # first seen: no recent edit


RECENT = compact_diff(BEFORE, RENAMED)
WHOLE = Window(0, len(RENAMED))


@pytest.mark.parametrize(("name", "new", "diff", "confidence", "expected"), [
    ("follows the rename", FOLLOWED, RECENT, 0.9, 1),
    ("no change", RENAMED, RECENT, 0.9, 0),
    ("no recent edit", FOLLOWED, "", 0.9, 0),
    ("unsure", FOLLOWED, RECENT, 0.3, 0),
    ("unrelated change", RENAMED.replace("s = 0", "s = 1"), RECENT, 0.9, 0),
    ("undoes the recent edit", BEFORE, RECENT, 0.9, 0),
    ("rewrites most of the window", "print('something else entirely')\n", RECENT, 0.9, 0),
    ("one related and one unrelated edit", FOLLOWED.replace("s = 0", "t = 0"), RECENT, 0.9, 0),
])
def test_gates_make_no_change_the_common_answer(name: str, new: str, diff: str, confidence: float,
                                                expected: int) -> None:
    edits = minimal_edits(RENAMED, new)
    assert len(accepted_edits(edits, RENAMED, WHOLE, diff, confidence, 0.5)) == expected, name


def test_rewritten_window_stops_at_the_reply_end() -> None:
    assert rewritten_window("a\nb\n```\nmore") == "a\nb\n"
    assert rewritten_window("a\n<turn|>x") == "a\n"
    assert rewritten_window("x = '```'\n") == "x = '```'\n"  # a fence inside a line is code


def reply(text: str, confidence: float = 0.9, healed: str = "\n") -> RunReply:
    canvas = RunCanvas(text=healed + text, completion=text, confidence=(confidence,) * 8, steps=3,
                       finish_reason=FinishReason.CONVERGED, hit_eos=True)
    return RunReply(canvases=(canvas,), healed=healed, finish_reason=FinishReason.CONVERGED, queue_ms=0,
                    encode_ms=0, prefill_ms=0, total_ms=1, steps=3)


def test_suggested_edits_from_an_engine_reply() -> None:
    document = "import os\n" + RENAMED + "\nprint(total([1]))\n"
    start = len("import os\n")
    window = Window(start, start + len(RENAMED))
    request = EditRequest("u", "a.py", "python", document, start + 5, RECENT)
    edits = suggested_edits(request, window, reply(FOLLOWED), 0.5)
    assert applied(document, edits) == document.replace("in xs:", "in items:")
    assert suggested_edits(request, window, reply(RENAMED), 0.5) == ()  # the model kept the window: no-op
    assert suggested_edits(request, window, reply(FOLLOWED, confidence=0.2), 0.5) == ()
    assert suggested_edits(request, window, reply(FOLLOWED + "```\n"), 0.5) == edits  # chat reply's fence cut
