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
