"""POST /v1/code/edits against a real API server and engine (tiny random-weight checkpoint), and its planning."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from api_harness import ApiServer, running_api
from lsp_harness import LspEnv, lsp_env

from diffusion_copilot.server.api.completion import ApiLimits
from diffusion_copilot.server.api.edits import CodeEditRequest, plan_edit, recent_diff
from diffusion_copilot.server.settings import Settings

__all__ = ["lsp_env"]
BEFORE = "def total(xs):\n    s = 0\n    for x in xs:\n        s += x\n    return s\n"
AFTER = BEFORE.replace("def total(xs)", "def total(items)")
BODY = {"text": AFTER, "position": {"line": 0, "character": 15}, "path": "/work/t.py", "seed": 1,
        "recent_edits": [{"before": "def total(xs):\n", "after": "def total(items):\n"}]}


@pytest.fixture(scope="module")
def api(lsp_env: LspEnv, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    with running_api(lsp_env.env, lsp_env.model, tmp_path_factory.mktemp("api")) as server:
        yield server


def edits(server: ApiServer, body: dict[str, Any]) -> Any:
    with server.client() as client:
        return client.post("/v1/code/edits", json=body)


def test_plan_carries_the_recent_edits_as_a_diff_and_the_window() -> None:
    planned = plan_edit(CodeEditRequest.model_validate(BODY), Settings(), ApiLimits(), 3.0)
    edit = planned.planned.run.edit
    assert edit is not None and edit.text == AFTER  # the whole small document is the window
    assert "-def total(xs):" in edit.recent_edits and "+def total(items):" in edit.recent_edits
    change = {"path": "b.py", "before": "a\n", "after": "b\n"}
    other = CodeEditRequest.model_validate({**BODY, "recent_edits": [change]})
    assert recent_diff(other).startswith("# b.py\n")


def test_no_recent_edit_answers_no_edits_without_the_engine(api: ApiServer) -> None:
    response = edits(api, {**BODY, "recent_edits": []})
    assert response.status_code == 200, response.text
    assert response.json()["edits"] == [] and response.json()["timings"] is None


def test_edits_after_a_rename_run_an_edit_job(api: ApiServer) -> None:
    response = edits(api, BODY)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["timings"]["steps"] >= 1  # the engine ran the edit job
    assert body["model_has_random_weights"] is True
    for edit in body["edits"]:  # random weights: the gates almost always leave none
        assert set(edit) == {"text", "range"}


@pytest.mark.parametrize(("body", "where"), [
    ({**BODY, "stream": True}, "stream"),
    ({**BODY, "position": {"line": 99, "character": 0}}, "position"),
    ({**BODY, "recent_edits": [{"before": 1, "after": "x"}]}, "recent_edits.0.before"),
])
def test_bad_edit_bodies_get_400(api: ApiServer, body: dict[str, Any], where: str) -> None:
    response = edits(api, body)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == where
