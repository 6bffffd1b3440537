"""A byte-level client of the language server for tests of its wire: writes Content-Length frames (any bytes,
malformed ones included) to the real `diffusion-copilot serve` over stdio or TCP, and reads the replies with a
timeout, so a message the server drops fails the test instead of hanging it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from lsp_harness import TIMEOUT_S, LspEnv, server_command

REPLY_TIMEOUT_S = 20.0


def frame(message: dict[str, Any] | bytes) -> bytes:
    """One message as a Content-Length frame; bytes are sent as they are (`json.dumps` escapes lone surrogates)."""
    body = message if isinstance(message, bytes) else json.dumps(message).encode()
    return b"Content-Length: %d\r\n\r\n%b" % (len(body), body)


@dataclass
class RawClient:
    """One connection to a server: what it sent so far, and ways to wait for more."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    received: list[dict[str, Any]] = field(default_factory=list)

    def send(self, message: dict[str, Any] | bytes) -> None:
        self.writer.write(frame(message))

    async def read_message(self, timeout_s: float = REPLY_TIMEOUT_S) -> dict[str, Any] | None:
        """The next message from the server; None when it closed the connection."""
        async def read() -> dict[str, Any] | None:
            length = None
            while True:
                line = await self.reader.readline()
                if not line:
                    return None
                if line == b"\r\n":
                    break
                name, _, value = line.decode().partition(":")
                assert name in ("Content-Length", "Content-Type"), line
                if name == "Content-Length":
                    length = int(value)
            assert length is not None
            message: dict[str, Any] = json.loads(await self.reader.readexactly(length))
            self.received.append(message)
            return message

        return await asyncio.wait_for(read(), timeout_s)

    async def wait_for(self, accept: Callable[[dict[str, Any]], bool], timeout_s: float = REPLY_TIMEOUT_S
                       ) -> dict[str, Any]:
        """The first message (already received or still to come) that `accept` likes."""
        for message in self.received:
            if accept(message):
                return message

        async def wait() -> dict[str, Any]:
            while True:
                message = await self.read_message(timeout_s)
                if message is None:
                    raise AssertionError(f"the server closed the connection; it sent {self.received}")
                if accept(message):
                    return message

        return await asyncio.wait_for(wait(), timeout_s)

    async def reply(self, msg_id: int | str | None, timeout_s: float = REPLY_TIMEOUT_S) -> dict[str, Any]:
        """The server's answer to request `msg_id` (None: an error about a message whose id was unknown)."""
        return await self.wait_for(lambda m: "method" not in m and m.get("id") == msg_id
                                   and ("result" in m or "error" in m), timeout_s)

    async def request(self, msg_id: int, method: str, params: Any = None) -> dict[str, Any]:
        self.send({"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params})
        return await self.reply(msg_id)

    def notify(self, method: str, params: Any = None) -> None:
        self.send({"jsonrpc": "2.0", "method": method, "params": params})

    async def initialize(self, env: LspEnv, msg_id: int = 1, initialized: bool = True, **options: Any
                         ) -> dict[str, Any]:
        """initialize (with `options` beside the settings), then initialized; the initialize answer."""
        answer = await self.request(msg_id, "initialize", {
            "capabilities": {"window": {"workDoneProgress": False}},
            "initializationOptions": {"diffusionCopilot": env.settings(), **options}})
        if "result" in answer and initialized:
            self.notify("initialized", {})
        return answer

    async def wait_ready(self) -> None:
        await self.wait_for(lambda m: m.get("method") == "diffusionCopilot/status"
                            and m["params"]["state"] == "ready", TIMEOUT_S)

    def shown_messages(self) -> list[dict[str, Any]]:
        """The window/showMessage notifications received so far."""
        return [m for m in self.received if m.get("method") == "window/showMessage"]


@dataclass
class StdioServer:
    process: asyncio.subprocess.Process
    client: RawClient
    stderr: bytearray = field(default_factory=bytearray)
    draining: asyncio.Task[None] | None = None  # reads stderr as it comes, so the server never blocks on it

    async def drain(self) -> None:
        assert self.process.stderr is not None
        while chunk := await self.process.stderr.read(65536):
            self.stderr += chunk

    async def stop(self) -> bytes:
        """Shut the server down politely (or kill it) and return everything it logged."""
        with contextlib.suppress(Exception):
            self.client.send({"jsonrpc": "2.0", "id": "bye", "method": "shutdown"})
            await self.client.reply("bye", 10)
            self.client.notify("exit")
            await self.client.writer.drain()
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            await asyncio.wait_for(self.process.wait(), 20)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
        if self.draining is not None:
            await self.draining
        return bytes(self.stderr)


@contextlib.asynccontextmanager
async def stdio_server(env: LspEnv) -> AsyncIterator[StdioServer]:
    """A real `diffusion-copilot serve` over stdio, not yet initialized."""
    process = await asyncio.create_subprocess_exec(*server_command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                                   stderr=subprocess.PIPE, env={**env.env, "PYTHONUNBUFFERED": "1"},
                                                   limit=64 * 1024 * 1024)
    assert process.stdout is not None and process.stdin is not None
    server = StdioServer(process, RawClient(process.stdout, process.stdin))
    server.draining = asyncio.get_running_loop().create_task(server.drain())
    try:
        yield server
    finally:
        if process.returncode is None:
            await server.stop()
