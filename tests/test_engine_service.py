"""The engine process (`diffusion-copilot engine`) over its Unix socket, and the client that finds, starts and
restarts it: one engine per machine and model, status, jobs, cancellation, bad input, crashes.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lsp_harness import process_alive, stop_engines

from diffusion_copilot.server.engine_client import EngineClient, EngineSpec, EngineState, engine_paths
from diffusion_copilot.server.engine_messages import EngineError, PromptSpec, RunReply, RunRequest

TIMEOUT_S = 60.0
PROMPT = {"path": "a.py", "language": "python", "prefix": "def f(x):\n    ", "suffix": "\n"}
SLOW = {"canvas_length": 128, "max_steps": 512}


class Wire:
    """A raw JSON-lines connection to the engine socket."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.events: list[dict[str, Any]] = []
        self.replies: dict[Any, dict[str, Any]] = {}  # replies read while waiting for another one

    @classmethod
    async def open(cls, socket_path: Path) -> Wire:
        reader, writer = await asyncio.open_unix_connection(str(socket_path), limit=64 * 1024 * 1024)
        return cls(reader, writer)

    def send(self, message: dict[str, Any] | bytes) -> None:
        data = message if isinstance(message, bytes) else json.dumps(message).encode()
        self.writer.write(data + b"\n")

    async def reply(self, request_id: Any) -> dict[str, Any]:
        """The reply to `request_id`; events met on the way are kept in `events`."""
        async def read() -> dict[str, Any]:
            while request_id not in self.replies:
                line = await self.reader.readline()
                assert line, "the engine closed the connection"
                message: dict[str, Any] = json.loads(line)
                if "event" in message:
                    self.events.append(message)
                else:
                    self.replies[message.get("id")] = message
            return self.replies.pop(request_id)

        return await asyncio.wait_for(read(), TIMEOUT_S)

    async def call(self, request_id: Any, method: str, **params: Any) -> dict[str, Any]:
        self.send({"id": request_id, "method": method, "params": params})
        return await self.reply(request_id)

    async def until_ready(self) -> None:
        for attempt in range(10_000):
            status = (await self.call(f"s{attempt}", "status"))["result"]
            if status["state"] != "loading":
                assert status["state"] in ("ready", "busy"), status
                return
            await self.event("status")

    async def event(self, kind: str) -> dict[str, Any]:
        async def read() -> dict[str, Any]:
            while True:
                line = await self.reader.readline()
                assert line
                message: dict[str, Any] = json.loads(line)
                if message.get("event") == kind:
                    return message

        return await asyncio.wait_for(read(), TIMEOUT_S)

    async def close(self) -> None:
        self.writer.close()


def engine_process(model: Path, runtime_dir: Path, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "diffusion_copilot.server.cli", "engine", "--model", str(model),
                             "--device", "cpu", "--runtime-dir", str(runtime_dir), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "DIFFUSION_COPILOT_ENGINE_IDLE_EXIT_S": "30"})


def start_engine(model: Path, runtime_dir: Path) -> tuple[Path, subprocess.Popen[bytes]]:
    """A running engine process whose socket answers; (socket path, process)."""
    socket_path = engine_paths(EngineSpec(model=str(model), device="cpu"), runtime_dir)[0]
    process = engine_process(model, runtime_dir)
    deadline = time.monotonic() + TIMEOUT_S
    while not socket_path.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert socket_path.exists(), process.communicate()
    return socket_path, process


@pytest.fixture(scope="module")
def engine(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[tuple[Path, subprocess.Popen[bytes]]]:
    """One engine process shared by the tests of this module."""
    runtime_dir = tmp_path_factory.mktemp("engine")
    socket_path, process = start_engine(tiny_checkpoint, runtime_dir)
    yield socket_path, process
    stop_engines(runtime_dir)
    process.wait(TIMEOUT_S)


async def test_status_run_and_drafts(engine: tuple[Path, subprocess.Popen[bytes]]) -> None:
    wire = await Wire.open(engine[0])
    await wire.until_ready()
    status = (await wire.call(1, "status"))["result"]
    assert status["has_random_weights"] is True and status["pid"] == engine[1].pid
    reply = await wire.call(2, "run", prompt=PROMPT, canvas_length=16, max_steps=4, alternatives=2, drafts=True,
                            pin_healed=True, seed=1)
    result = reply["result"]
    assert len(result["canvases"]) == 2 and result["healed"] == "\n    "
    assert all(c["completion"] is not None and c["text"].startswith(result["healed"]) for c in result["canvases"])
    drafts = [e for e in wire.events if e["event"] == "draft"]
    assert [d["step"] for d in drafts] == list(range(1, result["timings"]["steps"] + 1))
    assert "busy" in {e["status"]["state"] for e in wire.events if e["event"] == "status"}
    assert (await wire.event("status"))["status"]["state"] == "ready"
    await wire.close()


async def test_bad_requests_get_errors_and_the_connection_stays(engine: tuple[Path, subprocess.Popen[bytes]]
                                                                ) -> None:
    wire = await Wire.open(engine[0])
    wire.send(b"{not json")
    assert (await wire.reply(None))["error"]["code"] == "bad_request"
    wire.send(b"[1, 2]")
    assert (await wire.reply(None))["error"]["code"] == "bad_request"
    assert (await wire.call(1, "no-such-method"))["error"]["code"] == "bad_request"
    assert (await wire.call(2, "run", prompt="text"))["error"]["code"] == "bad_request"
    assert (await wire.call(3, "run", prompt=PROMPT, canvas_length="long"))["error"]["code"] == "bad_request"
    assert (await wire.call(4, "run", prompt=PROMPT, canvas_length=100_000))["error"]["code"] == "engine_error"
    assert (await wire.call(5, "status"))["result"]["state"] in ("loading", "ready", "busy")
    await wire.close()


async def test_a_second_engine_leaves_the_first_in_charge(tiny_checkpoint: Path,
                                                         engine: tuple[Path, subprocess.Popen[bytes]]) -> None:
    second = engine_process(tiny_checkpoint, engine[0].parent)
    assert second.wait(TIMEOUT_S) == 1
    wire = await Wire.open(engine[0])
    assert (await wire.call(1, "status"))["result"]["pid"] == engine[1].pid
    await wire.close()


async def test_cancel_stops_the_job_within_a_step(engine: tuple[Path, subprocess.Popen[bytes]]) -> None:
    wire = await Wire.open(engine[0])
    await wire.until_ready()
    wire.send({"id": "long", "method": "run", "params": {"prompt": PROMPT, **SLOW, "drafts": True}})
    first = await wire.event("draft")
    assert (await wire.call("c", "cancel", job="long"))["result"] == {"cancelled": True}
    assert (await wire.reply("long"))["error"]["code"] == "cancelled"
    later = [e["step"] for e in wire.events if e["event"] == "draft" and e["job"] == "long"]
    assert max(later, default=first["step"]) <= first["step"] + 3  # stopped at a step boundary, not step 512
    await wire.close()


@pytest.mark.slow
async def test_the_queue_is_bounded_and_a_dropped_client_cancels_its_jobs(
        engine: tuple[Path, subprocess.Popen[bytes]]) -> None:
    wire = await Wire.open(engine[0])
    await wire.until_ready()
    for index in range(20):
        wire.send({"id": index, "method": "run", "params": {"prompt": PROMPT, **SLOW}})
    await wire.call("after", "status")  # requests are answered in order: every refusal has arrived
    refused = sorted(i for i, reply in wire.replies.items() if reply["error"]["code"] == "queue_full")
    assert len(refused) in (3, 4) and min(refused) >= 16  # 16 waiting, and one running (or not popped yet)
    other = await Wire.open(engine[0])
    await wire.close()  # the 17 accepted jobs are cancelled: the engine is soon free again
    while (await other.event("status"))["status"]["state"] != "ready":
        pass
    reply = await other.call("quick", "run", prompt=PROMPT, canvas_length=8, max_steps=2)
    assert "result" in reply
    await other.close()


@pytest.mark.slow
async def test_shutdown_exits_and_removes_the_socket(tiny_checkpoint: Path, tmp_path: Path) -> None:
    socket_path, process = start_engine(tiny_checkpoint, tmp_path)
    wire = await Wire.open(socket_path)
    assert (await wire.call(1, "shutdown"))["result"] == {}
    assert await asyncio.to_thread(process.wait, TIMEOUT_S) == 0
    assert not socket_path.exists()


@pytest.mark.slow
async def test_client_starts_one_engine_and_restarts_it_after_a_crash(tiny_checkpoint: Path, tmp_path: Path
                                                                      ) -> None:
    spec = EngineSpec(model=str(tiny_checkpoint), device="cpu")
    statuses: list[EngineState] = []
    changed = asyncio.Event()

    def on_status(status: Any) -> None:
        statuses.append(status.state)
        changed.set()

    first = EngineClient(spec, on_status=on_status, directory=tmp_path)
    second = EngineClient(spec, directory=tmp_path)
    try:
        assert await first.connect() is None
        assert await second.connect() is None  # finds the running engine instead of loading the model again
        lock = engine_paths(spec, tmp_path)[1]
        pid = int(lock.read_text())
        request = RunRequest(PromptSpec("a.py", "python", "x = "), canvas_length=8, max_steps=2)
        reply = await first.run(request)
        assert isinstance(reply, RunReply), reply
        assert (await second.refresh_status()).state in (EngineState.READY, EngineState.BUSY)
        assert len(list(tmp_path.glob("engine-*.sock"))) == 1

        os.kill(pid, signal.SIGKILL)  # a crash: the client reports it and starts a new engine
        statuses.clear()

        async def restarted() -> None:
            while not (EngineState.ERROR in statuses and statuses[-1] is EngineState.READY):
                changed.clear()
                await changed.wait()

        await asyncio.wait_for(restarted(), TIMEOUT_S)
        new_pid = int(lock.read_text())
        assert new_pid != pid and process_alive(new_pid) and not process_alive(pid)
        reply = await first.run(request)
        assert isinstance(reply, RunReply)
    finally:
        await first.close()
        await second.close()
        stop_engines(tmp_path)


async def test_a_command_that_cannot_start_is_an_error_value(tmp_path: Path) -> None:
    client = EngineClient(EngineSpec(command=("/nonexistent/diffusion-copilot", "engine")), directory=tmp_path)
    error = await client.connect()
    assert isinstance(error, EngineError) and error.code == "start_failed"
    assert client.status.state is EngineState.ERROR
    reply = await client.run(RunRequest(PromptSpec("a.py", "python", "x")))
    assert isinstance(reply, EngineError)
