"""Bad input to the language server: it stays up, answers null or a clear error, and writes only protocol
frames to stdout.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from typing import Any

import pytest
from lsp_harness import TIMEOUT_S, LspEnv, lsp_env, server_command, started
from lsprotocol import types as t
from raw_lsp import stdio_server

__all__ = ["lsp_env"]
URI = "file:///work/bad.py"


@pytest.mark.slow
async def test_unknown_uri_and_positions_outside_the_document(lsp_env: LspEnv) -> None:
    async with started(lsp_env) as s:
        await s.wait_ready()
        assert await s.complete("file:///never/opened.py", 0, 0) is None
        s.open(URI, "x = 1\n")
        assert await s.complete(URI, 7, 0) is None  # line past the end
        beyond = await s.complete(URI, 0, 500)  # past the line end: the end of the line, as the spec says
        assert beyond is None or all(i.range.start == t.Position(0, 500) for i in beyond.items)
        assert await s.complete(URI, 0, 5) is not None


@pytest.mark.slow
async def test_invalid_change_range_binary_and_huge_documents(lsp_env: LspEnv) -> None:
    async with started(lsp_env) as s:
        await s.wait_ready()
        s.open(URI, "x = 1\n")
        s.change(URI, 2, (40, 3), (2, 1), "oops")  # start after end, both past the document
        await s.complete(URI, 0, 0)  # answered (null or items), not an error: the server is up
        s.open("file:///work/binary.py", "\x00\x01\x02\ud7ff\ufffe\x7f" * 1000 + "\n")
        await s.complete("file:///work/binary.py", 0, 3)
        huge = "x = 1  # " + "y" * 100 + "\n"
        s.open("file:///work/huge.py", huge * (10 * 1024 * 1024 // len(huge)))  # 10 MB
        result = await s.complete("file:///work/huge.py", 5000, 5)
        assert result is None or len(result.items) <= 1
        assert await s.complete(URI, 0, 0) is not None  # and the server still answers normally


@pytest.mark.slow
async def test_languages_disabled_or_unknown(lsp_env: LspEnv) -> None:
    async with started(lsp_env) as s:
        await s.wait_ready()
        s.open("file:///work/notes.txt", "some notes\n", language="plaintext")
        assert await s.complete("file:///work/notes.txt", 0, 4) is None  # disabled by default
        s.open("file:///work/prog.zz", "zz zz\n", language="no-such-language")
        assert await s.complete("file:///work/prog.zz", 0, 2) is not None


def frame(message: dict[str, Any] | bytes) -> bytes:
    body = message if isinstance(message, bytes) else json.dumps(message).encode()
    return b"Content-Length: %d\r\n\r\n%b" % (len(body), body)


def frames(data: bytes) -> list[dict[str, Any]]:
    """Every message on the server's stdout; fails if anything else is there."""
    messages = []
    while data:
        header, sep, rest = data.partition(b"\r\n\r\n")
        fields = dict(line.split(b": ", 1) for line in header.split(b"\r\n"))
        assert sep and set(fields) <= {b"Content-Length", b"Content-Type"}, data[:200]
        length = int(fields[b"Content-Length"])
        messages.append(json.loads(rest[:length]))
        data = rest[length:]
    return messages


def test_malformed_json_rpc_keeps_the_server_up(lsp_env: LspEnv) -> None:
    stream = b"".join([
        frame(b"{this is not json"),
        frame({"jsonrpc": "2.0", "id": 1, "method": "initialize",
               "params": {"capabilities": {}, "initializationOptions": {"diffusionCopilot": lsp_env.settings()}}}),
        frame({"jsonrpc": "2.0", "method": "initialized", "params": {}}),
        frame({"jsonrpc": "2.0", "id": 2, "method": "no/such/method", "params": {}}),
        frame({"jsonrpc": "2.0", "id": 3, "method": "textDocument/inlineCompletion", "params": {"bogus": True}}),
        frame({"jsonrpc": "2.0", "id": 4, "method": "workspace/executeCommand",
               "params": {"command": "diffusionCopilot.status"}}),
        frame({"jsonrpc": "2.0", "id": 5, "method": "shutdown"}),
        frame({"jsonrpc": "2.0", "method": "exit"}),
    ])
    process = subprocess.run(server_command(), input=stream, capture_output=True, timeout=TIMEOUT_S,
                             env={**lsp_env.env, "PYTHONUNBUFFERED": "1"}, check=False)
    replies = {m["id"]: m for m in frames(process.stdout) if "id" in m and "method" not in m}
    assert "capabilities" in replies[1]["result"]
    assert replies[2]["error"]["code"] == -32601  # method not found
    assert replies[3]["error"]["code"] in (-32602, -32603)  # invalid params, as an error, not a crash
    assert replies[4]["result"]["state"] in ("loading", "ready", "busy", "error")
    assert "result" in replies[5] and process.returncode == 0
    assert b"INFO" in process.stderr  # the logs went to stderr


async def test_logs_can_go_to_a_file(lsp_env: LspEnv, tmp_path: Any) -> None:
    log_file = tmp_path / "server.log"
    command = [*server_command(), "--log-file", str(log_file)]
    process = await asyncio.create_subprocess_exec(*command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                                   stderr=subprocess.PIPE, env=lsp_env.env)
    stdout, stderr = await asyncio.wait_for(process.communicate(frame(
        {"jsonrpc": "2.0", "id": 1, "method": "shutdown"}) + frame({"jsonrpc": "2.0", "method": "exit"})),
        TIMEOUT_S)
    assert [m.get("id") for m in frames(stdout)] == [1]
    assert log_file.read_text() and not stderr.strip()
    assert os.path.getsize(log_file) > 0


async def test_malformed_messages_are_answered_as_json_rpc_asks(lsp_env: LspEnv) -> None:
    async with stdio_server(lsp_env) as server:
        client = server.client
        client.send(b"{this is not json")
        client.send(b'{"id": 7, "method": "shutdown"}')  # no "jsonrpc"
        client.send(b'{"jsonrpc": "1.0", "id": "eight", "method": "shutdown"}')
        client.send(b"[1, 2]")  # a batch: LSP has none
        client.send(b'{"jsonrpc": "2.0", "id": true, "method": "shutdown"}')  # an id of the wrong type
        client.send(b'{"jsonrpc": "2.0", "method": "$/ping"}\xff')  # invalid UTF-8 after the JSON: still not JSON
        status = {"command": "diffusionCopilot.status", "arguments": ["caf\xe9"]}
        client.send(json.dumps({"jsonrpc": "2.0", "id": 9, "method": "workspace/executeCommand",
                                "params": status}).replace("\\u00e9", "\xe9").encode("latin-1"))  # invalid UTF-8
        assert (await client.reply(9))["result"]["state"] == "loading"  # answered, so every frame before it is too
        body = json.dumps({"jsonrpc": "2.0", "id": 10, "method": "workspace/executeCommand",
                           "params": {"command": "diffusionCopilot.status"}}).encode()
        client.writer.write(b"Content-Length: %d\r\nX-Unknown: 1\r\n\r\n%b" % (len(body), body))
        assert "result" in await client.reply(10)  # over stdio a header LSP does not define is skipped
        errors = [(m["id"], m["error"]["code"]) for m in client.received if "error" in m]
        assert errors == [(None, -32700), (7, -32600), ("eight", -32600), (None, -32600), (None, -32600),
                          (None, -32700)]
        stderr = await server.stop()
    assert b"Traceback" not in stderr
    logged = logged_by_server(stderr)
    assert len([line for line in logged if "parse error" in line]) == 2
    assert len([line for line in logged if "invalid request" in line]) == 4


async def test_invalid_utf8_and_lone_surrogates_still_complete(lsp_env: LspEnv) -> None:
    uri = "file:///work/caf\xff.py"  # invalid UTF-8 in the URI of every message that names the document
    async with stdio_server(lsp_env) as server:
        client = server.client
        assert "result" in await client.initialize(lsp_env)
        await client.wait_ready()
        opened = {"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": {
            "uri": "URI", "languageId": "python", "version": 1, "text": "s = 'caf\xff'\ndef main():\n    "}}}
        client.send(json.dumps(opened).replace("URI", uri).replace("\\u00ff", "\xff").encode("latin-1"))
        completion = {"jsonrpc": "2.0", "id": 2, "method": "textDocument/inlineCompletion", "params": {
            "textDocument": {"uri": "URI"}, "position": {"line": 2, "character": 4}, "context": {"triggerKind": 1}}}
        client.send(json.dumps(completion).replace("URI", uri).encode("latin-1"))
        assert (await client.reply(2, TIMEOUT_S))["result"] is not None  # the document was opened

        surrogates = "file:///work/surrogates.py"
        client.notify("textDocument/didOpen", {"textDocument": {
            "uri": surrogates, "languageId": "python", "version": 1, "text": "s = '\ud800'\ndef main():\n    "}})
        for msg_id, line, character in ((3, 0, 6), (4, 2, 4)):
            answer = await client.request(msg_id, "textDocument/inlineCompletion", {
                "textDocument": {"uri": surrogates}, "position": {"line": line, "character": character},
                "context": {"triggerKind": 1}})
            assert answer.get("result") is not None, answer
        at = {"line": 0, "character": 5}
        client.notify("textDocument/didChange", {"textDocument": {"uri": surrogates, "version": 2},
                                                 "contentChanges": [{"range": {"start": at, "end": at},
                                                                     "text": "\udc00\ud800"}]})
        answer = await client.request(5, "textDocument/inlineCompletion", {
            "textDocument": {"uri": surrogates}, "position": {"line": 0, "character": 8},
            "context": {"triggerKind": 1}})
        assert answer.get("result") is not None, answer
        assert client.shown_messages() == []
        stderr = await server.stop()
    assert b"Traceback" not in stderr and b"out of step" not in stderr  # the syntax tree kept up with the edit


async def test_a_clients_mistakes_log_one_line_and_show_nothing(lsp_env: LspEnv) -> None:
    async with stdio_server(lsp_env) as server:
        client = server.client
        assert "result" in await client.initialize(lsp_env)
        answer = await client.request(2, "textDocument/inlineCompletion", {"bogus": True})
        assert answer["error"]["code"] == -32602 and "textDocument/inlineCompletion" in answer["error"]["message"]
        client.notify("textDocument/didOpen", {"textDocument": {"uri": URI}})  # no text: dropped, logged
        client.notify("textDocument/didChange", {"textDocument": {"uri": "file:///never/opened.py", "version": 2},
                                                 "contentChanges": [{"text": "x"}]})
        assert "result" in await client.request(3, "workspace/executeCommand", {"command": "diffusionCopilot.status"})
        assert client.shown_messages() == []
        stderr = await server.stop()
    assert b"Traceback" not in stderr
    lines = logged_by_server(stderr)
    assert len([line for line in lines if "invalid params for textDocument/inlineCompletion" in line]) == 1
    assert len([line for line in lines if "invalid params for textDocument/didOpen" in line]) == 1
    assert len([line for line in lines if "never/opened.py" in line]) == 1


def logged_by_server(stderr: bytes) -> list[str]:
    """The server's own log lines (pygls logs every message it sends too, at INFO)."""
    return [line for line in stderr.decode(errors="replace").splitlines() if " diffusion_copilot." in line]


async def test_a_malformed_response_fails_its_request_instead_of_hanging(lsp_env: LspEnv) -> None:
    async with stdio_server(lsp_env) as server:
        client = server.client
        assert "result" in await client.request(1, "initialize", {
            "capabilities": {"workspace": {"configuration": True}},
            "initializationOptions": {"diffusionCopilot": lsp_env.settings()}})
        client.notify("initialized", {})
        pull = await client.wait_for(lambda m: m.get("method") == "workspace/configuration")
        client.send({"jsonrpc": "2.0", "id": pull["id"], "result": 5})  # not a list of settings objects
        assert "result" in await client.request(2, "workspace/executeCommand", {"command": "diffusionCopilot.status"})
        stderr = await server.stop()
    assert b"Traceback" not in stderr
    lines = logged_by_server(stderr)
    assert len([line for line in lines if "malformed response to request" in line]) == 1
    assert any("workspace/configuration failed" in line for line in lines)  # the pull ended, it did not hang


@pytest.mark.slow
async def test_a_client_that_quits_leaves_no_traceback_in_the_log(lsp_env: LspEnv) -> None:
    async with stdio_server(lsp_env) as server:
        await server.client.initialize(lsp_env)
        await server.client.wait_ready()
        doc = {"uri": "file:///tmp/quit.py", "languageId": "python", "version": 1, "text": "def f():\n    "}
        server.client.notify("textDocument/didOpen", {"textDocument": doc})
        await server.client.writer.drain()
        # An editor that quits closes both pipes without a shutdown; the server still has status to send.
        server.process._transport.get_pipe_transport(1).close()  # type: ignore[attr-defined]
        assert server.process.stdin is not None
        server.process.stdin.close()
        await asyncio.wait_for(server.process.wait(), TIMEOUT_S)
        assert server.draining is not None
        await server.draining
    log = server.stderr.decode()
    assert "Traceback" not in log and "ERROR" not in log, log[-3000:]
