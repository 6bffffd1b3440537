"""`textDocument/copilotInlineEdit` and `textDocument/didShowInlineEdit` against the real server and engine (tiny
random-weight checkpoint), checked against what the engine itself answers for the same edit job."""

from __future__ import annotations

import asyncio
from typing import Any

from lsp_harness import TIMEOUT_S, LspEnv, as_dict, lsp_env, started
from lsprotocol import types as t
from test_lsp import URI, loaded_status

from diffusion_copilot.engine.prompt.edit import EDIT_CANVAS_TOKENS, compact_diff, edit_window, window_chars
from diffusion_copilot.engine.protocol import EngineError
from diffusion_copilot.server.completion.next_edit import EditRequest, edit_run_request, suggested_edits
from diffusion_copilot.server.engine_client import EngineClient, EngineSpec
from diffusion_copilot.server.settings import Settings, section_of, updated

__all__ = ["lsp_env"]
BEFORE = "def total(xs):\n    s = 0\n    for x in xs:\n        s += x\n    return s\n"
AFTER = BEFORE.replace("def total(xs)", "def total(items)")


async def inline_edit(s: Any, line: int, character: int, version: int) -> dict[str, Any]:
    result = await asyncio.wait_for(s.client.protocol.send_request_async("textDocument/copilotInlineEdit", {
        "textDocument": {"uri": URI, "version": version}, "position": {"line": line, "character": character}}),
        TIMEOUT_S)
    return as_dict(result)


def plain(value: Any) -> Any:
    """pygls' namedtuple-like objects as dicts and lists, all the way down."""
    if hasattr(value, "_asdict"):
        return {k: plain(v) for k, v in value._asdict().items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


async def engine_edits(lsp: LspEnv, settings: dict[str, Any], text: str, cursor: int, diff: str) -> list[Any]:
    """What the server should answer: the same edit job sent to the engine directly, through the same gates."""
    parsed, _ = updated(Settings(), section_of({"diffusionCopilot": settings}) or {})
    client = EngineClient(EngineSpec(model=parsed.model, device=parsed.device, dtype=parsed.dtype),
                          directory=lsp.runtime_dir)
    try:
        status = await loaded_status(client)
        request = EditRequest(URI, URI.removeprefix("file://"), "python", text, cursor, diff, shown_path="example.py")
        window = edit_window(text, cursor, window_chars(EDIT_CANVAS_TOKENS, status.chars_per_token))
        reply = await client.run(edit_run_request(request, window, parsed))
        assert not isinstance(reply, EngineError), reply
        return list(suggested_edits(request, window, reply, 0.0 if status.has_random_weights else 0.5))
    finally:
        await client.close()


async def test_inline_edit_is_advertised_and_answers_no_change_without_a_recent_edit(lsp_env: LspEnv) -> None:
    async with started(lsp_env) as s:
        experimental = s.result.capabilities.experimental
        assert experimental["diffusionCopilot"]["inlineEdit"]["method"] == "textDocument/copilotInlineEdit"
        await s.wait_ready()
        s.open(URI, BEFORE)
        assert await inline_edit(s, 0, 4, 1) == {"edits": []}  # nothing edited yet: nothing follows
        unknown = await asyncio.wait_for(s.client.protocol.send_request_async("textDocument/copilotInlineEdit", {
            "textDocument": {"uri": "file:///nowhere.py", "version": 1}, "position": {"line": 0, "character": 0}}),
            TIMEOUT_S)
        assert as_dict(unknown) == {"edits": []}


async def test_inline_edit_after_a_rename_matches_the_engine(lsp_env: LspEnv) -> None:
    settings = lsp_env.settings(seed=5)
    async with started(lsp_env, settings) as s:
        await s.wait_ready()
        s.open(URI, BEFORE)
        s.change(URI, 2, (0, 10), (0, 12), "items")  # the recent edit: rename the parameter at one site
        result = plain(await inline_edit(s, 0, 15, 2))
        diff = compact_diff(BEFORE, AFTER)
        expected = await engine_edits(lsp_env, settings, AFTER, 15, diff)
        assert len(result["edits"]) == len(expected)  # random weights: almost always none (the gates' no-op)
        for wire, edit in zip(result["edits"], expected, strict=True):
            assert wire["text"] == edit.text and wire["textDocument"] == {"uri": URI, "version": 2}
            assert wire["command"]["command"] == "diffusionCopilot.acceptInlineEdit"
        s.client.protocol.notify("textDocument/didShowInlineEdit",
                                 {"item": {"command": {"arguments": ["edit-1.0"]}}})
        assert plain(await inline_edit(s, 0, 15, 2)) == result  # asked again after the show: the same (cached)


async def test_inline_edits_are_recorded_like_completions(lsp_env: LspEnv) -> None:
    """Each answer is a telemetry row of trigger `edit` (items = edits); didShowInlineEdit marks it shown and the
    accept command accepted."""
    async with started(lsp_env, lsp_env.settings(seed=5)) as s:
        await s.wait_ready()
        s.open(URI, BEFORE)
        s.change(URI, 2, (0, 10), (0, 12), "items")
        result = plain(await inline_edit(s, 0, 15, 2))
        row = [r for r in lsp_env.telemetry_rows() if r[1] == "edit"][-1]
        assert row[2:6] == ("engine", len(result["edits"]), 0, 0)
        # random weights: usually no edit, so no id on the wire; the row's id is what an edit's command would carry
        edit_id = result["edits"][0]["command"]["arguments"][0] if result["edits"] else f"{row[0]}.0"
        assert edit_id.split(".")[0] == row[0]
        s.client.protocol.notify("textDocument/didShowInlineEdit", {"item": {"command": {"arguments": [edit_id]}}})
        await asyncio.wait_for(s.client.workspace_execute_command_async(t.ExecuteCommandParams(
            command="diffusionCopilot.acceptInlineEdit", arguments=[edit_id])), TIMEOUT_S)
        assert next(r for r in lsp_env.telemetry_rows() if r[0] == row[0])[4:6] == (1, 1)


async def test_next_edit_can_be_switched_off(lsp_env: LspEnv) -> None:
    async with started(lsp_env, lsp_env.settings(seed=5, nextEdit={"enabled": False})) as s:
        await s.wait_ready()
        s.open(URI, BEFORE)
        s.change(URI, 2, (0, 10), (0, 12), "items")
        before = len(lsp_env.telemetry_rows())
        assert await inline_edit(s, 0, 15, 2) == {"edits": []}
        assert len(lsp_env.telemetry_rows()) == before  # not asked: nothing recorded
        s.configure(**lsp_env.settings(seed=5, nextEdit={"enabled": True}))
        await inline_edit(s, 0, 15, 2)
        assert len(lsp_env.telemetry_rows()) == before + 1
