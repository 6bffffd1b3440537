"""The language server over stdio (pytest-lsp) against the real engine process and a real checkpoint.

The fast subset runs by default; the rest is marked slow (CI runs all). The checkpoint has random weights, so
assertions are about protocol behaviour and about the text coming from the engine: with a fixed seed, each item
must equal what the engine gives directly for the same prompt.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path
from typing import Any

import pytest
from lsp_harness import TIMEOUT_S, LspEnv, lsp_env, params, started
from lsprotocol import types as t
from pygls.exceptions import JsonRpcRequestCancelled

from diffusion_copilot.engine.protocol import EngineError, EngineState, EngineStatus
from diffusion_copilot.server.completion.inline import (
    CursorRequest,
    context_budget,
    finished_texts,
    postprocess_options,
    run_request,
    with_context,
)
from diffusion_copilot.server.engine_client import EngineClient, EngineSpec
from diffusion_copilot.server.settings import Settings, section_of, updated

__all__ = ["lsp_env"]
URI = "file:///work/example.py"
SLOW = {"maxSteps": 512, "canvasLength": 128, "latencyBudgetMs": 60000}  # many seconds on a CPU


async def loaded_status(client: EngineClient) -> EngineStatus:
    """The engine's status once its model has loaded (connecting first)."""
    changed = asyncio.Event()
    client.on_status = lambda status: changed.set()
    await client.refresh_status()
    while True:
        changed.clear()
        if client.status.state is not EngineState.LOADING:
            return client.status
        await asyncio.wait_for(changed.wait(), TIMEOUT_S)


async def engine_texts(lsp: LspEnv, settings: dict[str, Any], prefix: str, suffix: str, invoked: bool
                       ) -> tuple[str, ...]:
    """What the engine itself answers for a prompt, through the same job the server builds."""
    parsed, warnings = updated(Settings(), section_of({"diffusionCopilot": settings}) or {})
    assert not warnings
    client = EngineClient(EngineSpec(model=parsed.model, device=parsed.device, dtype=parsed.dtype),
                          directory=lsp.runtime_dir)
    try:
        status = await loaded_status(client)  # the server sizes the context from it, and so does this
        # no workspace folder: the prompt shows the file's name, not its directories
        plain = CursorRequest(uri=URI, path=URI.removeprefix("file://"), language="python", prefix=prefix,
                              suffix=suffix, cursor_offset=len(prefix), invoked=invoked, shown_path="example.py")
        request = with_context(plain, None, context_budget(status.max_prompt_tokens, status.chars_per_token))
        reply = await client.run(run_request(request, parsed, pin_healed=True))
        assert not isinstance(reply, EngineError), reply
        texts = finished_texts(request, reply, postprocess_options(status.has_random_weights))
        return texts if invoked else texts[:1]
    finally:
        await client.close()


async def multi_line_seed(lsp: LspEnv, settings: dict[str, Any], prefix: str, suffix: str) -> int:
    """A seed for which the engine's completion spans several lines."""
    for seed in range(40):
        texts = await engine_texts(lsp, {**settings, "seed": seed}, prefix, suffix, invoked=False)
        if texts and "\n" in texts[0].strip("\n"):
            return seed
    raise AssertionError("no multi-line completion in 40 seeds")


@pytest.mark.slow
async def test_multi_line_completion_comes_from_the_engine(lsp_env: LspEnv) -> None:
    text = "def add(a, b):\n    \n\nprint(add(1, 2))\n"
    settings = lsp_env.settings(canvasLength=64)
    seed = await multi_line_seed(lsp_env, settings, text[:19], text[19:])
    settings["seed"] = seed
    async with started(lsp_env, settings) as s:
        await s.wait_ready()
        s.open(URI, text)
        result = await s.complete(URI, 1, 4)
        assert result is not None and len(result.items) == 1
        item = result.items[0]
        assert item.range == t.Range(start=t.Position(1, 4), end=t.Position(1, 4))  # on the cursor line
        assert item.command is not None and item.command.command == "diffusionCopilot.accept"
        expected = await engine_texts(lsp_env, settings, text[:19], text[19:], invoked=False)
        assert item.insert_text == expected[0] and "\n" in expected[0]


async def test_edits_to_a_large_document_reach_its_completion(lsp_env: LspEnv) -> None:
    settings = lsp_env.settings(alternatives=2, seed=3)
    head = "x = 1\n" * 200_000  # 1.2 MB: a large document, its context a window around the cursor
    async with started(lsp_env, settings) as s:
        await s.wait_ready()
        s.open(URI, head)
        typed = ["def f(a):", "\n    return", " a + "]
        text, line, character = head, 200_000, 0
        for version, piece in enumerate(typed, start=2):
            s.change(URI, version, (line, character), (line, character), piece)
            text += piece
            line, character = text.count("\n"), len(text) - text.rfind("\n") - 1
        result = await s.complete(URI, line, character, invoked=True)
    expected = await engine_texts(lsp_env, settings, text, "", invoked=True)
    assert result is not None and [item.insert_text for item in result.items] == list(expected)


async def test_invoked_gives_alternatives_from_one_job(lsp_env: LspEnv) -> None:
    settings = lsp_env.settings(alternatives=3, seed=7)
    text = "import os\n\ndef main():\n    "
    async with started(lsp_env, settings) as s:
        await s.wait_ready()
        s.open(URI, text)
        invoked = await s.complete(URI, 3, 4, invoked=True)
        expected = await engine_texts(lsp_env, settings, text, "", invoked=True)
        assert invoked is not None and 1 < len(invoked.items) <= 3
        assert tuple(i.insert_text for i in invoked.items) == expected
        automatic = await s.complete(URI, 3, 4)
        assert automatic is not None and len(automatic.items) == 1


@pytest.mark.parametrize("encodings", [None, pytest.param(["utf-8"], marks=pytest.mark.slow),
                                       pytest.param(["utf-32"], marks=pytest.mark.slow)])
async def test_positions_in_the_negotiated_encoding(lsp_env: LspEnv, encodings: list[str] | None) -> None:
    line = "s = '😀中e\u0301' + f(x"  # emoji (2 UTF-16 units, 4 UTF-8 bytes), CJK, a combining accent
    text = f"# 表\n{line}\nz = 1\n"
    cut = line.index(" + ")
    units = {None: len(line[:cut].encode("utf-16-le")) // 2, "utf-8": len(line[:cut].encode()),
             "utf-32": cut}[encodings[0] if encodings else None]
    settings = lsp_env.settings(seed=3)
    async with started(lsp_env, settings, encodings=encodings) as s:
        assert s.result.capabilities.position_encoding == (encodings[0] if encodings else "utf-16")
        await s.wait_ready()
        s.open(URI, text)
        result = await s.complete(URI, 1, units)
        prefix = text[: text.index(line) + cut]
        expected = await engine_texts(lsp_env, settings, prefix, text[len(prefix):], invoked=False)
        assert result is not None and tuple(i.insert_text for i in result.items) == expected
        # an edit addressed in the same units lands after the emoji and the accent
        s.change(URI, 2, (1, units), (1, units), "Z")
        assert await asyncio.wait_for(s.client.workspace_execute_command_async(t.ExecuteCommandParams(
            command="diffusionCopilot.status")), TIMEOUT_S) is not None  # a round trip: the edit is applied
        result = await s.complete(URI, 1, units + 1)
        changed = text.replace(" + ", "Z + ", 1)
        prefix = changed[: changed.index("Z + ") + 1]
        expected = await engine_texts(lsp_env, settings, prefix, changed[len(prefix):], invoked=False)
        assert result is not None and tuple(i.insert_text for i in result.items) == expected


@pytest.mark.slow
async def test_selected_completion_info_is_extended(lsp_env: LspEnv) -> None:
    settings = lsp_env.settings(seed=5)
    text = "import os\nos.pa"
    async with started(lsp_env, settings) as s:
        await s.wait_ready()
        s.open(URI, text)
        selected = t.SelectedCompletionInfo(range=t.Range(start=t.Position(1, 3), end=t.Position(1, 5)),
                                            text="path")
        result = await s.complete(URI, 1, 5, selected=selected)
        expected = await engine_texts(lsp_env, settings, "import os\nos.path", "", invoked=False)
        assert result is not None and len(result.items) == 1
        assert result.items[0].range == selected.range
        assert result.items[0].insert_text == "path" + expected[0]


async def test_cancel_request_stops_the_engine_job(lsp_env: LspEnv) -> None:
    async with started(lsp_env, lsp_env.settings(**SLOW)) as s:
        await s.wait_ready()
        s.open(URI, "def slow():\n    ")
        request = asyncio.create_task(s.client.protocol.send_request_async(
            t.TEXT_DOCUMENT_INLINE_COMPLETION, params(URI, 1, 4, t.InlineCompletionTriggerKind.Invoked),
            msg_id="slow-1"))
        await s.wait_status(lambda st: st["state"] == "busy")
        s.client.cancel_request(t.CancelParams(id="slow-1"))
        with pytest.raises(JsonRpcRequestCancelled):
            await asyncio.wait_for(request, TIMEOUT_S)
        # the 512-step job stops at its next step: the engine is idle long before it could have finished
        await s.wait_status(lambda st: st["state"] == "ready", timeout_s=10)


@pytest.mark.slow
async def test_newer_request_cancels_the_older_one(lsp_env: LspEnv) -> None:
    async with started(lsp_env, lsp_env.settings(**SLOW)) as s:
        await s.wait_ready()
        s.open(URI, "def slow():\n    ")
        older = asyncio.create_task(s.client.text_document_inline_completion_async(
            params(URI, 1, 4, t.InlineCompletionTriggerKind.Invoked)))
        await s.wait_status(lambda st: st["state"] == "busy")
        s.configure(**lsp_env.settings(maxSteps=4, canvasLength=16))
        newer = await s.complete(URI, 1, 4)
        with pytest.raises(JsonRpcRequestCancelled):
            await asyncio.wait_for(older, TIMEOUT_S)
        assert newer is not None and len(newer.items) <= 1


@pytest.mark.slow
async def test_no_answer_for_a_stale_document_version(lsp_env: LspEnv) -> None:
    async with started(lsp_env, lsp_env.settings(**SLOW)) as s:
        await s.wait_ready()
        s.open(URI, "def slow():\n    ")
        request = asyncio.create_task(s.complete(URI, 1, 4, invoked=True))
        await s.wait_status(lambda st: st["state"] == "busy")
        s.change(URI, 2, (1, 4), (1, 4), "x")
        assert await request is None
        await s.wait_status(lambda st: st["state"] == "ready", timeout_s=10)


async def test_typing_through_is_answered_from_cache(lsp_env: LspEnv) -> None:
    settings = lsp_env.settings(seed=11)
    async with started(lsp_env, settings) as s:
        await s.wait_ready()
        s.open(URI, "value = ")
        first = await s.complete(URI, 0, 8)
        assert first is not None and first.items
        shown = first.items[0].insert_text
        assert isinstance(shown, str)
        typed = shown[:2] if "\n" not in shown[:2] and len(shown) > 2 else shown[:1]
        s.change(URI, 2, (0, 8), (0, 8), typed)
        column = 8 + len(typed.encode("utf-16-le")) // 2
        second = await s.complete(URI, 0, column)
        assert second is not None and [i.insert_text for i in second.items] == [shown[len(typed):]]
        assert second.items[0].range == t.Range(start=t.Position(0, column), end=t.Position(0, column))
        assert lsp_env.telemetry_rows()[-1][2] == "typing"
        # a character that does not match the suggestion goes to the engine again
        s.change(URI, 3, (0, column), (0, column), "\x07")
        third = await s.complete(URI, 0, column + 1)
        assert third is not None and lsp_env.telemetry_rows()[-1][2] == "engine"


@pytest.mark.slow
async def test_configuration_is_validated_and_applied(lsp_env: LspEnv) -> None:
    async with started(lsp_env) as s:
        await s.wait_ready()
        s.open(URI, "x = ")
        s.configure(maxSteps="many", alternatives=99)
        message = await asyncio.wait_for(s.client.wait_for_notification(t.WINDOW_SHOW_MESSAGE), TIMEOUT_S)
        assert message.type == t.MessageType.Warning
        assert "maxSteps" in message.message and "alternatives" in message.message
        assert await s.complete(URI, 0, 4) is not None  # previous values kept: still completing
        s.client.set_configuration({**lsp_env.settings(), "enable": False}, section="diffusionCopilot")
        s.pulled.clear()
        s.client.workspace_did_change_configuration(t.DidChangeConfigurationParams(settings=None))  # pull
        await asyncio.wait_for(s.pulled.wait(), TIMEOUT_S)
        assert await s.complete(URI, 0, 4) is None
        s.configure(enable=True, disabledLanguages=["python"])
        assert await s.complete(URI, 0, 4) is None


@pytest.mark.slow
async def test_loading_progress_and_status(lsp_env: LspEnv) -> None:
    settings = lsp_env.settings(dtype="float32")  # an engine of its own: this one starts cold
    async with started(lsp_env, settings) as s:
        first = await s.wait_status(lambda st: True)
        assert first["state"] in ("loading", "ready")
        s.open(URI, "x = ")
        while_loading = await s.complete(URI, 0, 4)  # answered at once, even while the model loads
        assert while_loading is None or s.statuses[-1]["state"] != "loading"
        ready = await s.wait_ready()
        assert ready["hasRandomWeights"] is True and ready["model"] == lsp_env.model
        assert "random weights" in ready["message"]
        assert any(st["state"] == "loading" for st in s.statuses)
        def reports() -> list[Any]:
            return [r for token, rs in s.client.progress_reports.items() for r in rs]

        # the end may trail the ready status when the engine was ready before the client created the token
        deadline = time.monotonic() + 10
        while not (reports() and isinstance(reports()[-1], t.WorkDoneProgressEnd)) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert isinstance(reports()[0], t.WorkDoneProgressBegin)
        assert isinstance(reports()[-1], t.WorkDoneProgressEnd)
        await s.complete(URI, 0, 3)
        latency = await s.wait_status(lambda st: st["lastLatencyMs"] is not None)
        assert latency["lastLatencyMs"] > 0


@pytest.mark.slow
async def test_telemetry_and_accept_command(lsp_env: LspEnv) -> None:
    async with started(lsp_env, lsp_env.settings(seed=2)) as s:
        await s.wait_ready()
        s.open(URI, "y = ")
        result = await s.complete(URI, 0, 4)
        assert result is not None and result.items
        item = s.client.protocol._converter.unstructure(result.items[0])
        s.client.protocol.notify("textDocument/didShowCompletion", {"item": item})
        s.client.protocol.notify("textDocument/didPartiallyAcceptCompletion", {"item": item, "acceptedLength": 3})
        command = result.items[0].command
        assert command is not None
        await asyncio.wait_for(s.client.workspace_execute_command_async(t.ExecuteCommandParams(
            command=command.command, arguments=command.arguments)), TIMEOUT_S)
        row = next(r for r in lsp_env.telemetry_rows() if r[0] == str(command.arguments[0]).split(".")[0])
        assert row[4:] == (1, 1, 3)


async def test_servers_one_after_another_keep_each_others_telemetry(lsp_env: LspEnv) -> None:
    ids = []
    for _ in range(2):  # each a new process: before, each numbered its completions from c1 and replaced the rows
        async with started(lsp_env, lsp_env.settings(seed=2)) as s:
            await s.wait_ready()
            s.open(URI, "y = ")
            result = await s.complete(URI, 0, 4)
            assert result is not None and result.items and result.items[0].command is not None
            ids.append(str(result.items[0].command.arguments[0]).split(".")[0])
    rows = {r[0]: r for r in lsp_env.telemetry_rows()}
    assert ids[0] != ids[1] and ids[0] in rows and ids[1] in rows


@pytest.mark.slow
async def test_shutdown_and_exit(lsp_env: LspEnv) -> None:
    async with started(lsp_env) as s:
        await s.wait_ready()
        await asyncio.wait_for(s.client.shutdown_session(), TIMEOUT_S)
        server = s.client._server
        assert server is not None and server.returncode == 0


def test_settings_schema_names_every_setting() -> None:
    from diffusion_copilot.server.settings import KEYS, field_name, settings_json_schema

    assert {f.name for f in dataclasses.fields(Settings)} == {field_name(k) for k in KEYS}
    schema = settings_json_schema()["properties"]
    assert set(schema) == {f"diffusionCopilot.{k}" for k in KEYS}
    assert Path(__file__).parents[3].joinpath("docs", "protocol.md").read_text().count("| `") >= len(KEYS)
