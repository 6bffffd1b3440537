"""Next-edit suggestions in the Neovim plugin end to end: real headless nvim 0.12 and 0.11 against the real language
server and the default model. An edit asks for the next one; what is shown must be what the server sent; <Tab>
jumps to it and <Tab> applies it; another edit cancels the request in flight and clears what is shown.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from headless_nvim import NvimSession, default_plugin_opts, isolated_env, require_binary, start_session, stop_engines
from lsp_edits import with_edits
from test_nvim_plugin import ENGINE_READY_S, assert_clean_messages, wait_until_status

pytestmark = pytest.mark.slow

# A parameter renamed at its definition; the seeded default model answers an edit here (checked by the test: if
# a new default model answers none, pick another seed with `nvim.lsp` logs or tests/server/lsp/test_lsp_next_edit.py).
SAMPLE = "def area(width, height):\n    return width * height\n\n\nprint(area(3, 4))\n"
RENAME = "gg0fwciww<Esc>"  # `width` -> `w` in the definition, then back to normal mode (the edit pause)
OPTS = "settings = { seed = 4, nextEdit = { debounceMs = 1500 } }"  # a wide window to see a request in flight
ANSWER_S = 120.0


@pytest.fixture(scope="module", params=["0.12", "0.11"])
def nvim(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NvimSession]:
    version = str(request.param)
    workdir = tmp_path_factory.mktemp("next-edit-" + version)
    runtime = tmp_path_factory.mktemp("engine-run")
    (workdir / ".git").mkdir()
    first = workdir / "first.py"
    first.write_text(SAMPLE)
    env = isolated_env(workdir / "home", runtime)
    try:
        yield from start_session(require_binary(version), workdir, env, default_plugin_opts(OPTS), first)
    finally:
        stop_engines(runtime)


def open_sample(nvim: NvimSession, name: str) -> None:
    path = Path(nvim.lua("return vim.fn.getcwd()")) / name
    path.write_text(SAMPLE)
    nvim.open_file(path)
    nvim.lua("DCProbe.edit_log = {}")
    nvim.wait(lambda s: s["attached"], "the language server to attach", 60.0)
    wait_until_status(nvim, lambda st: st.get("state") == "ready", "engine ready", ENGINE_READY_S)


def requests(state: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in state["edit_log"] if e["kind"] == "request"]


def answer(state: dict[str, Any], request: dict[str, Any]) -> dict[str, Any] | None:
    return next((e for e in state["edit_log"] if e["kind"] == "response" and e["id"] == request["id"]), None)


def rename_and_wait_for_the_answer(nvim: NvimSession) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Renames the parameter; the state once the one request it sent is answered, and the edits answered."""
    nvim.keys(RENAME)
    state = nvim.wait(
        lambda s: s["mode"] == "n" and requests(s) and answer(s, requests(s)[-1]) is not None,
        "the next-edit request after leaving insert mode, answered",
        ANSWER_S,
    )
    assert state["lines"][0] == "def area(w, height):"
    [request] = requests(state)  # typing asked nothing: one request, on leaving insert mode
    assert request["version"] == state["version"] and request["pos"]["line"] == 0
    response = answer(state, request)
    assert response is not None and response.get("error") is None, response
    return state, list(response.get("edits") or [])


def test_an_edit_asks_shows_the_answer_and_tab_jumps_then_applies(nvim: NvimSession) -> None:
    open_sample(nvim, "jump_apply.py")
    state, edits = rename_and_wait_for_the_answer(nvim)
    assert edits, "the seeded default model answered no edit here (see SAMPLE)"
    shown = nvim.wait(lambda s: s["next_edit"] is not None, "the suggested edit to show", 10.0)["next_edit"]
    assert len(shown) == len(edits)  # every edit of the answer is shown
    for drawn, edit in zip(shown, edits, strict=True):
        assert drawn["lines"] == edit["text"].split("\n")
        start, end = edit["range"]["start"], edit["range"]["end"]
        if start != end:
            assert drawn["old"] == [start["line"], start["character"], end["line"], end["character"]]
    start = edits[0]["range"]["start"]
    nvim.keys("G")  # away from the edit: the first <Tab> jumps
    nvim.wait(lambda s: s["cursor"][0] == len(s["lines"]) - 1, "the cursor on the last line", 10.0)
    nvim.keys("<Tab>")
    jumped = nvim.wait(lambda s: s["cursor"] == [start["line"], start["character"]], "<Tab> to jump", 10.0)
    assert jumped["lines"] == state["lines"] and jumped["next_edit"] is not None
    nvim.keys("<Tab>")
    applied = nvim.wait(lambda s: s["lines"] != state["lines"], "<Tab> to apply", 10.0)
    assert "\n".join(applied["lines"]) == with_edits("\n".join(state["lines"]), edits)  # all of them, at once
    assert applied["next_edit"] is None  # applied: gone (the next answer comes after the server's debounce)
    after = nvim.wait(lambda s: len(requests(s)) == 2, "applying (an edit) to ask again", 10.0)
    assert requests(after)[-1]["version"] == after["version"]
    assert_clean_messages(nvim)


def test_another_edit_cancels_the_request_and_clears_the_suggestion(nvim: NvimSession) -> None:
    open_sample(nvim, "clear.py")
    rename_and_wait_for_the_answer(nvim)
    nvim.wait(lambda s: s["next_edit"] is not None, "the suggested edit to show", 10.0)
    nvim.keys("Gx")  # an unrelated edit: clears at once and asks again
    cleared = nvim.wait(
        lambda s: s["next_edit"] is None and len(requests(s)) == 2 and s["edits_pending"] == 1,
        "the edit to clear the suggestion and ask again",
        10.0,
    )
    in_flight = requests(cleared)[-1]
    assert in_flight["version"] == cleared["version"]
    nvim.keys("x")  # a second edit within the server's debounce: the first request is cancelled
    later = nvim.wait(
        lambda s: {"kind": "cancel", "id": in_flight["id"]} in s["edit_log"] and len(requests(s)) == 3,
        "the second edit to cancel the first request and ask again",
        10.0,
    )
    assert later["next_edit"] is None
    settled = nvim.wait(lambda s: s["edits_pending"] == 0, "the last request answered", ANSWER_S)
    stale = answer(settled, in_flight)
    assert stale is None or not stale.get("edits"), stale  # cancelled: never an edit for an older text
    assert_clean_messages(nvim)
