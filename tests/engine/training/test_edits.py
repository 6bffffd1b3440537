"""Synthetic next-edit tasks: each kind on small hand-written files, windows, determinism."""

from __future__ import annotations

import random

import pytest

from diffusion_copilot.engine.training.edits import EditKind, EditTask, edit_tasks, sample_edit_tasks

SCALE = '''def scale(values, factor):
    out = []
    for value in values:
        out.append(value * factor)
    return out
'''

CALLS = '''def area(width):
    return width * 2


total = area(3) + area(4)
'''

PARALLEL = '''def setup(parser):
    parser.add_argument("--a", type=int)
    parser.add_argument("--b")
    parser.add_argument("--c")
'''


def tasks(text: str, kind: EditKind, max_window_chars: int = 400) -> list[EditTask]:
    return [t for t in edit_tasks(text, random.Random(0), max_window_chars) if t.kind is kind]


def window(task: EditTask) -> str:
    return task.document[task.window_start : task.window_end]


def test_rename_expects_the_other_sites_to_follow() -> None:
    task = next(t for t in tasks(SCALE, EditKind.RENAME) if t.detail == "out")
    new = task.recent.text
    assert new.startswith("out_") and task.before == SCALE
    assert task.document.count(new) == 1 and task.document[: task.cursor].endswith(new)
    assert task.expected_document == SCALE.replace("out", new)
    assert window(task) != task.expected


def test_parameter_is_passed_at_every_call() -> None:
    (task,) = tasks(CALLS, EditKind.PARAMETER)
    parameter = task.detail.split("(")[1].rstrip(")")
    assert task.document.startswith(f"def area(width, {parameter}):")
    assert task.expected_document.endswith(f"area(3, {parameter}) + area(4, {parameter})\n")


def test_one_parallel_call_gets_a_keyword_and_the_others_should_too() -> None:
    (task,) = tasks(PARALLEL, EditKind.PARALLEL)
    keyword = task.recent.text.lstrip(", ")
    assert task.document.count(keyword) == 1
    assert task.expected.count(keyword) == 3 and task.expected.count(f'"--c", {keyword})') == 1


def test_no_change_tasks_expect_the_window_unchanged() -> None:
    found = tasks(SCALE.replace("out = []", "out = [0]"), EditKind.NO_CHANGE)
    assert {t.detail for t in found} == {"finished rename", "changed number"}
    for task in found:
        assert task.expected == window(task)
        assert task.expected_document == task.document != task.before
    finished = next(t for t in found if t.recent.text.startswith("out_"))
    assert "out" not in finished.document.replace(finished.recent.text, "")  # every site already renamed
    assert finished.before.count(finished.recent.text) == 2  # the last site was the recent edit


def test_windows_over_the_budget_give_no_task() -> None:
    assert tasks(CALLS, EditKind.PARAMETER, max_window_chars=20) == []


@pytest.mark.parametrize("text", ["def broken(:\n", ""])
def test_files_that_do_not_parse_or_offer_nothing_give_no_tasks(text: str) -> None:
    assert edit_tasks(text, random.Random(0), 400) == []


def test_sampling_is_deterministic_with_a_seed() -> None:
    files = [SCALE, CALLS, PARALLEL]
    first = sample_edit_tasks(files, 2, seed=3, max_window_chars=400)
    assert first == sample_edit_tasks(files, 2, seed=3, max_window_chars=400)
    assert {t.kind for _, t in first} == set(EditKind)
