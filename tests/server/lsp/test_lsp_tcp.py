"""`diffusion-copilot serve --tcp`: loopback only without a token; with one, a connection must show it in
`initialize` before anything else, or it gets an error and is closed. The real server process, real sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from api_harness import free_port
from lsp_harness import LspEnv, lsp_env, server_command
from raw_lsp import REPLY_TIMEOUT_S, RawClient, frame

__all__ = ["lsp_env"]
TOKEN = "s3cret-token"
REFUSED = -32000


def serve(env: LspEnv, *args: str, extra_env: dict[str, str] | None = None, timeout_s: float = 30
          ) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*server_command(), *args], env={**env.env, **(extra_env or {})}, capture_output=True,
                          timeout=timeout_s, check=False)


@pytest.mark.parametrize("args", [
    ["--tcp", "0.0.0.0:0"],
    ["--tcp", "[::]:0"],
    ["--tcp", "192.0.2.1:0"],
    ["--tcp", "127.0.0.1:0", "--token-env", "NO_SUCH_VARIABLE_HERE"],
    ["--token-env", "LSP_TOKEN"],  # a token means nothing over stdio
])
def test_refused_with_one_line_and_exit_2(lsp_env: LspEnv, args: list[str]) -> None:
    done = serve(lsp_env, *args, extra_env={"LSP_TOKEN": TOKEN})
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.decode().strip().splitlines()) == 1 and b"Traceback" not in done.stderr
    assert not done.stdout


def test_a_port_in_use_is_one_line_and_exit_1(lsp_env: LspEnv) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        done = serve(lsp_env, "--tcp", f"127.0.0.1:{taken.getsockname()[1]}")
    assert done.returncode == 1, done.stderr
    assert done.stderr.decode().strip().splitlines()[-1].startswith("diffusion-copilot: cannot listen on 127.0.0.1:")
    assert b"Traceback" not in done.stderr


@contextlib.asynccontextmanager
async def tcp_server(env: LspEnv, *args: str, extra_env: dict[str, str] | None = None
                     ) -> AsyncIterator[tuple[int, asyncio.subprocess.Process]]:
    """A real `serve --tcp 127.0.0.1:PORT ARGS`, listening when this yields."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        *server_command(), "--tcp", f"127.0.0.1:{port}", *args, env={**env.env, **(extra_env or {})},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.returncode is None, "the server exited"
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                assert time.monotonic() < deadline, "the server never listened"
                await asyncio.sleep(0.05)  # polling for the listening socket, with a deadline
                continue
            writer.close()  # a connection that sends nothing starts no session
            break
        yield port, process
    finally:
        if process.returncode is None:
            process.kill()
        output, _ = await process.communicate()
        assert b"Traceback" not in output, output.decode()[-3000:]


async def connect(port: int) -> RawClient:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    return RawClient(reader, writer)


async def closed(client: RawClient) -> bool:
    """Whether the server closed the connection without a message (a reset, when it left bytes unread)."""
    try:
        return await client.read_message() is None
    except ConnectionResetError:
        return True


def initialize(msg_id: int, **options: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": msg_id, "method": "initialize",
            "params": {"capabilities": {}, "initializationOptions": options}}


async def refused(client: RawClient, message: dict[str, Any] | bytes) -> dict[str, Any]:
    """The error that answers `message`, after which the server must close the connection."""
    client.send(message)
    answer = await client.read_message()
    assert answer is not None and answer["error"]["code"] == REFUSED, answer
    assert await client.read_message() is None  # closed
    return answer


async def test_a_token_is_needed_before_anything_else(lsp_env: LspEnv, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    takeover = {"jsonrpc": "2.0", "method": "workspace/didChangeConfiguration", "params": {"settings": {
        "diffusionCopilot": {"engineCommand": ["sh", "-c", f"touch {marker}"]}}}}
    async with tcp_server(lsp_env, "--token-env", "LSP_TOKEN", extra_env={"LSP_TOKEN": TOKEN}) as (port, process):
        answer = await refused(await connect(port), takeover)
        assert answer["id"] is None and "authentication required" in answer["error"]["message"]
        answer = await refused(await connect(port), {"jsonrpc": "2.0", "id": 5, "method": "shutdown"})
        assert answer["id"] == 5
        assert (await refused(await connect(port), initialize(1)))["id"] == 1
        answer = await refused(await connect(port), initialize(2, token=TOKEN[:-1] + "X"))
        assert "authentication failed" in answer["error"]["message"]
        await refused(await connect(port), initialize(3, token=None))
        huge = frame(initialize(4, token=TOKEN, padding="x" * 100_000))  # a big body before the token is shown
        client = await connect(port)
        client.writer.write(huge)
        assert await closed(client)

        client = await connect(port)
        answer = await client.request(6, "initialize", {"capabilities": {}, "initializationOptions": {
            "token": TOKEN, "diffusionCopilot": {"debounceMs": 0}}})
        assert "capabilities" in answer["result"], answer
        second = await connect(port)  # one session at a time, even with the token
        second.send(initialize(11, token=TOKEN))
        answer = await second.read_message() or {}
        assert answer["id"] == 11 and "another client" in answer["error"]["message"]
        status = await client.request(7, "workspace/executeCommand", {"command": "diffusionCopilot.status"})
        assert "state" in status["result"]
        assert not any(m.get("method") == "window/showMessage" for m in client.received)  # the token is no setting
        assert "result" in await client.request(8, "shutdown")
        client.notify("exit")
        await asyncio.wait_for(process.wait(), REPLY_TIMEOUT_S)
    assert not marker.exists()


async def test_without_a_token_loopback_clients_are_served_but_not_smuggled_http(lsp_env: LspEnv) -> None:
    async with tcp_server(lsp_env) as (port, process):
        body = frame(initialize(1))[frame(initialize(1)).index(b"{"):]
        web_page = await connect(port)  # what a browser sends for a page's fetch() to http://127.0.0.1:PORT
        web_page.writer.write(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n"
                              b"Content-Length: %d\r\n\r\n%b" % (len(body), body))
        assert await closed(web_page)  # unanswered

        client = await connect(port)
        assert "capabilities" in (await client.request(2, "initialize", {"capabilities": {}}))["result"]
        assert "result" in await client.request(3, "shutdown")
        client.notify("exit")
        await asyncio.wait_for(process.wait(), REPLY_TIMEOUT_S)
