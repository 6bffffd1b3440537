"""The engine process (`diffusion-copilot engine`) over its Unix socket, and the client that finds, starts and
restarts it: one engine per machine and model, status, jobs, cancellation, bad input, crashes; and, with the
trained default model, what the language server takes from it: prompt limits, token spans for the confidence cut.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lsp_harness import process_alive, stop_engines

from diffusion_copilot.engine import PromptParts
from diffusion_copilot.engine.protocol import EngineError, EngineState, ErrorCode, RunReply, RunRequest
from diffusion_copilot.engine.weights.default_model import shipped_model_dir
from diffusion_copilot.server.engine_client import EngineClient, EngineSpec, engine_paths

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

    async def until_idle(self) -> None:
        """Wait until the engine is ready with nothing queued; polled, since a status event sent before this
        connection was registered never reaches it."""
        async def poll() -> None:
            for attempt in itertools.count():
                status = (await self.call(f"i{attempt}", "status"))["result"]
                if status["state"] == "ready" and not status["queue"]:
                    return
                await asyncio.sleep(0.05)

        await asyncio.wait_for(poll(), TIMEOUT_S)

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
                            # long enough to outlive the slow tests between two uses of a module's engine
                            env={**os.environ, "DIFFUSION_COPILOT_ENGINE_IDLE_EXIT_S": "900"})


def start_engine(model: Path, runtime_dir: Path, *extra: str) -> tuple[Path, subprocess.Popen[bytes]]:
    """A running engine process whose socket answers; (socket path, process)."""
    socket_path = engine_paths(EngineSpec(model=str(model), device="cpu"), runtime_dir)[0]
    process = engine_process(model, runtime_dir, *extra)
    deadline = time.monotonic() + TIMEOUT_S
    while not accepts(socket_path) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert accepts(socket_path), process.communicate()
    return socket_path, process


def accepts(socket_path: Path) -> bool:
    """Whether the engine listens on its socket (the file appears on bind, a moment before it listens)."""
    with socket.socket(socket.AF_UNIX) as probe:
        try:
            probe.connect(str(socket_path))
        except OSError:
            return False
    return True


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
    assert status["kernels"].startswith("experts: stock loop over experts; attention: sdpa")
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


async def test_a_lone_surrogate_fails_only_its_own_request(engine: tuple[Path, subprocess.Popen[bytes]]) -> None:
    wire = await Wire.open(engine[0])
    await wire.until_ready()
    bad = {**PROMPT, "prefix": "s = '\ud800'\n"}  # valid JSON, not Unicode: the tokenizer cannot take it
    for request_id, prompt in (("bad", bad), ("good", PROMPT)):  # sent together, so they may share a batch
        wire.send({"id": request_id, "method": "run", "params": {"prompt": prompt, "max_steps": 2}})
    error = (await wire.reply("bad"))["error"]
    assert error["code"] == "bad_request" and "prompt.prefix" in error["message"]
    assert "canvases" in (await wire.reply("good"))["result"]
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


# Concurrent requests: the worker takes every waiting request and denoises them together.
BATCH = {
    "a": {"prompt": {**PROMPT, "prefix": "def f(x):\n    "}, "canvas_length": 16, "max_steps": 4, "seed": 1,
          "drafts": True},
    "b": {"prompt": {**PROMPT, "prefix": "class A:\n    def g(self):\n        "}, "canvas_length": 16,
          "max_steps": 6, "seed": 2, "alternatives": 2, "pin_healed": True},
    "c": {"prompt": {**PROMPT, "prefix": "import os\n"}, "canvas_length": 8, "max_steps": 3, "seed": 3},
    "d": {"prompt": {**PROMPT, "prefix": "x = [1, 2, "}, "canvas_length": 16, "max_steps": 5, "seed": 4,
          "drafts": True},
}


async def hold_worker(socket_path: Path) -> Wire:
    """A connection whose long job keeps the worker busy, so that later requests wait in the queue."""
    wire = await Wire.open(socket_path)
    await wire.until_ready()
    wire.send({"id": "hold", "method": "run", "params": {"prompt": PROMPT, **SLOW, "drafts": True}})
    await wire.event("draft")
    return wire


async def release_when_queued(holder: Wire, count: int) -> None:
    """Wait until `count` requests wait in the queue, then cancel the holding job: they are taken together."""
    async def queued() -> None:
        attempt = 0
        while (await holder.call(f"q{attempt}", "status"))["result"]["queue"] < count:
            attempt += 1

    await asyncio.wait_for(queued(), TIMEOUT_S)
    assert (await holder.call("release", "cancel", job="hold"))["result"] == {"cancelled": True}
    assert (await holder.reply("hold"))["error"]["code"] == "cancelled"


async def alone(socket_path: Path, requests: dict[str, dict[str, Any]]) -> dict[str, tuple[dict[str, Any], list[Any]]]:
    """Each request sent on its own, one after another: (reply, draft texts by step) by request id."""
    wire = await Wire.open(socket_path)
    await wire.until_ready()
    replies = {}
    for request_id, params in requests.items():
        replies[request_id] = (await wire.call(request_id, "run", **params), drafts_of(wire, request_id))
    await wire.close()
    return replies


def drafts_of(wire: Wire, request_id: str) -> list[Any]:
    return [(e["step"], e["texts"]) for e in wire.events if e["event"] == "draft" and e["job"] == request_id]


def same_result(got: dict[str, Any], expected: dict[str, Any]) -> None:
    """The reply's canvases are those of `expected` (confidence up to rounding); timings aside."""
    result, want = got["result"], expected["result"]
    assert result["healed"] == want["healed"] and result["finish_reason"] == want["finish_reason"]
    assert result["timings"]["steps"] == want["timings"]["steps"]
    assert len(result["canvases"]) == len(want["canvases"])
    for canvas, wanted in zip(result["canvases"], want["canvases"], strict=True):
        assert {k: v for k, v in canvas.items() if k != "confidence"} == \
            {k: v for k, v in wanted.items() if k != "confidence"}
        assert canvas["confidence"] == pytest.approx(wanted["confidence"], abs=2e-3)


async def test_concurrent_requests_are_batched_and_each_gets_its_own_reply(
        engine: tuple[Path, subprocess.Popen[bytes]]) -> None:
    expected = await alone(engine[0], BATCH)
    holder = await hold_worker(engine[0])
    first, second, third = [await Wire.open(engine[0]) for _ in range(3)]
    for wire, request_id in ((first, "a"), (second, "b"), (third, "c"), (first, "d")):
        wire.send({"id": request_id, "method": "run", "params": BATCH[request_id]})
    await release_when_queued(holder, len(BATCH))
    replies = {"a": await first.reply("a"), "b": await second.reply("b"), "c": await third.reply("c"),
               "d": await first.reply("d")}
    for request_id, reply in replies.items():
        same_result(reply, expected[request_id][0])
    assert drafts_of(first, "a") == expected["a"][1] and drafts_of(first, "d") == expected["d"][1]
    order = [e["job"] for e in first.events if e["event"] == "draft"]
    assert order.index("d") < len(order) - 1 - order[::-1].index("a")  # one batch: a's and d's steps interleave
    for wire in (holder, first, second, third):
        await wire.close()


async def test_a_cancelled_request_in_a_batch_leaves_the_others(engine: tuple[Path, subprocess.Popen[bytes]]
                                                                ) -> None:
    others = {"a": BATCH["a"], "long": {**BATCH["d"], "max_steps": 60}}
    expected = await alone(engine[0], others)
    holder = await hold_worker(engine[0])
    first, second = await Wire.open(engine[0]), await Wire.open(engine[0])
    first.send({"id": "x", "method": "run", "params": {**BATCH["d"], "max_steps": 512, "seed": 5}})
    first.send({"id": "long", "method": "run", "params": others["long"]})
    second.send({"id": "a", "method": "run", "params": others["a"]})
    await release_when_queued(holder, 3)
    await first.event("draft")  # the batch runs: "long" sends drafts
    assert (await first.call("c", "cancel", job="x"))["result"] == {"cancelled": True}
    assert (await first.reply("x"))["error"]["code"] == "cancelled"
    steps = expected["long"][0]["result"]["timings"]["steps"]
    assert len(drafts_of(first, "long")) + 1 < steps  # answered at the step it stopped, not when the batch ends
    same_result(await first.reply("long"), expected["long"][0])
    same_result(await second.reply("a"), expected["a"][0])
    assert drafts_of(first, "long")[-1] == expected["long"][1][-1]
    for wire in (holder, first, second):
        await wire.close()


async def test_a_request_done_first_in_its_batch_is_answered_before_the_batch_ends(
        engine: tuple[Path, subprocess.Popen[bytes]]) -> None:
    requests = {"short": {**BATCH["a"], "max_steps": 2}, "long": {**BATCH["d"], "max_steps": 60}}
    expected = await alone(engine[0], requests)
    holder = await hold_worker(engine[0])
    wire = await Wire.open(engine[0])
    for request_id, params in requests.items():
        wire.send({"id": request_id, "method": "run", "params": params})
    await release_when_queued(holder, 2)
    same_result(await wire.reply("short"), expected["short"][0])
    steps = expected["long"][0]["result"]["timings"]["steps"]
    assert len(drafts_of(wire, "long")) + 1 < steps  # "long" is still being denoised
    same_result(await wire.reply("long"), expected["long"][0])
    assert drafts_of(wire, "long") == expected["long"][1]
    for connection in (holder, wire):
        await connection.close()


async def test_an_invalid_request_in_a_batch_gets_its_own_error(engine: tuple[Path, subprocess.Popen[bytes]]
                                                                ) -> None:
    expected = await alone(engine[0], {"a": BATCH["a"], "c": BATCH["c"]})
    holder = await hold_worker(engine[0])
    first, second = await Wire.open(engine[0]), await Wire.open(engine[0])
    first.send({"id": "a", "method": "run", "params": BATCH["a"]})
    second.send({"id": "wrong", "method": "run", "params": {"prompt": PROMPT, "canvas_length": "long"}})
    second.send({"id": "huge", "method": "run", "params": {"prompt": PROMPT, "canvas_length": 100_000}})
    first.send({"id": "c", "method": "run", "params": BATCH["c"]})
    await release_when_queued(holder, 4)
    assert (await second.reply("wrong"))["error"]["code"] == "bad_request"
    assert (await second.reply("huge"))["error"]["code"] == "engine_error"
    same_result(await first.reply("a"), expected["a"][0])
    same_result(await first.reply("c"), expected["c"][0])
    for wire in (holder, first, second):
        await wire.close()


@pytest.mark.slow
async def test_the_queue_is_bounded_and_a_dropped_client_cancels_its_jobs(
        engine: tuple[Path, subprocess.Popen[bytes]]) -> None:
    wire = await Wire.open(engine[0])
    await wire.until_ready()
    for index in range(30):
        wire.send({"id": index, "method": "run", "params": {"prompt": PROMPT, **SLOW}})
    await wire.call("after", "status")  # requests are answered in order: every refusal has arrived
    refused = sorted(i for i, reply in wire.replies.items() if reply["error"]["code"] == "queue_full")
    # 16 waiting, and the batch running (up to 8 rows, taken while the requests arrive; or none popped yet)
    assert 30 - 16 - 8 <= len(refused) <= 30 - 16 and min(refused) >= 16
    other = await Wire.open(engine[0])
    await wire.close()  # the accepted jobs are cancelled: the engine is soon free again
    await other.until_idle()  # run to the end, the 16 to 24 accepted jobs would take over a minute
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


async def test_an_engine_whose_model_failed_to_load_exits_once_its_clients_left(tmp_path: Path) -> None:
    socket_path, process = start_engine(tmp_path / "no-such-checkpoint", tmp_path)  # idle exit set to 900 s
    try:
        wire = await Wire.open(socket_path)
        for attempt in itertools.count():
            status = (await wire.call(attempt, "status"))["result"]
            if status["state"] != "loading":
                break
            await wire.event("status")
        assert status["state"] == "error" and "loading the model failed" in status["message"]
        await wire.close()
        assert await asyncio.to_thread(process.wait, 30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


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
        request = RunRequest(PromptParts("a.py", "python", "x = "), canvas_length=8, max_steps=2)
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
    assert isinstance(error, EngineError) and error.code is ErrorCode.START_FAILED
    assert client.status.state is EngineState.ERROR
    reply = await client.run(RunRequest(PromptParts("a.py", "python", "x")))
    assert isinstance(reply, EngineError)


# The embedded default model: trained, so its confidence means something, and its prompt is capped at 320 tokens.
DEFAULT_MODEL = shipped_model_dir()
ADD = {"path": "calc.py", "language": "python", "prefix": "def add(a, b):\n    return a +",
       "suffix": "\n\n\ndef sub(a, b):\n    return a - b\n"}
DOCUMENT = '''"""Cutting completions where they should end."""

OPENERS, CLOSERS = "([{", ")]}"


def balance(text: str) -> int:
    """How many brackets the text leaves open."""
    depth = 0
    for ch in text:
        if ch in OPENERS:
            depth += 1
        elif ch in CLOSERS:
            depth -= 1
    return depth


def cut_at_line_end(text: str) -> str:
    '''


@pytest.fixture(scope="module")
def default_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, EngineSpec, Path]]:
    """An engine process serving the default model: (socket path, spec, runtime directory)."""
    assert DEFAULT_MODEL is not None, "the repository ships models/default"
    runtime_dir = tmp_path_factory.mktemp("default-engine")
    socket_path, process = start_engine(DEFAULT_MODEL, runtime_dir)
    yield socket_path, EngineSpec(model=str(DEFAULT_MODEL), device="cpu"), runtime_dir
    stop_engines(runtime_dir)
    process.wait(TIMEOUT_S)


async def test_the_status_says_how_long_a_prompt_may_be(
        tiny_checkpoint: Path, engine: tuple[Path, subprocess.Popen[bytes]],
        default_engine: tuple[Path, EngineSpec, Path]) -> None:
    from transformers import AutoTokenizer

    from diffusion_copilot.engine.prompt.budget import chars_per_token

    for socket_path, model, tokens in ((engine[0], tiny_checkpoint, 2048), (default_engine[0], DEFAULT_MODEL, 320)):
        wire = await Wire.open(socket_path)
        await wire.until_ready()
        status = (await wire.call(1, "status"))["result"]
        assert status["max_prompt_tokens"] == tokens  # the default model's tokenizer says 320: its training length
        assert status["chars_per_token"] == chars_per_token(AutoTokenizer.from_pretrained(model))
        await wire.close()


async def test_a_result_says_which_characters_each_token_covers(default_engine: tuple[Path, EngineSpec, Path]
                                                                 ) -> None:
    wire = await Wire.open(default_engine[0])
    await wire.until_ready()
    prompt = {"path": "cut.py", "language": "python", "prefix": DOCUMENT, "suffix": "\n"}
    result = (await wire.call(1, "run", prompt=prompt, canvas_length=32, max_steps=3, alternatives=2, seed=0))["result"]
    for canvas in result["canvases"]:
        assert canvas["token_chars"] and len(canvas["token_chars"]) == len(canvas["confidence"])
        assert sum(canvas["token_chars"]) == len(canvas["text"]) and min(canvas["token_chars"]) >= 0
        assert all(0.0 <= p <= 1.0 and p == round(p, 3) for p in canvas["confidence"])  # compact on the wire
    await wire.close()


async def test_drafts_end_where_the_canvas_ends(default_engine: tuple[Path, EngineSpec, Path]) -> None:
    """Drafts are cut at <eos> like the result: nothing the model wrote after it (noise, pinned suffix) shows."""
    wire = await Wire.open(default_engine[0])
    await wire.until_ready()
    for seed in range(8):  # unconverged rows often hold tokens after <eos>: some of these seeds have them
        wire.send({"id": seed, "method": "run", "params": {"prompt": ADD, "canvas_length": 32, "max_steps": 8,
                                                           "alternatives": 3, "seed": seed, "drafts": True}})
    for seed in range(8):
        result = (await wire.reply(seed))["result"]
        drafts = [e for e in wire.events if e["event"] == "draft" and e["job"] == seed]
        assert result["finish_reason"] in ("converged", "step_cap") and len(drafts) == result["timings"]["steps"]
        assert drafts[-1]["texts"] == [c["text"] for c in result["canvases"]]  # the last draft is the final canvas
    await wire.close()


async def ready_client(default_engine: tuple[Path, EngineSpec, Path]) -> EngineClient:
    """A client of the default model's engine, once the model has loaded."""
    wire = await Wire.open(default_engine[0])
    await wire.until_ready()
    await wire.close()
    client = EngineClient(default_engine[1], directory=default_engine[2])
    assert await client.connect() is None
    return client


def _non_blank_tokens(canvas: Any, healed: str) -> list[tuple[int, float]]:
    """(offset in the completion, confidence) of each token after the healed characters that writes more than
    whitespace."""
    found, end = [], -len(healed)
    for piece, value in zip(canvas.token_texts, canvas.confidence, strict=True):
        start, end = max(end, 0), end + len(piece)
        if canvas.completion[start:max(end, 0)].strip():
            found.append((start, value))
    return found


async def test_a_low_confidence_tail_is_cut_on_the_editor_path(default_engine: tuple[Path, EngineSpec, Path]
                                                                ) -> None:
    """The engine's per-token confidence reaches post-processing in the language server's own flow
    (completion/inline.py, which the HTTP API shares): a threshold between two tokens' confidence ends the completion
    at the less sure."""
    from dataclasses import replace

    from diffusion_copilot.server.completion.inline import (
        CursorRequest,
        context_budget,
        finished_texts,
        run_request,
        with_context,
    )
    from diffusion_copilot.server.completion.postprocess import PostprocessOptions
    from diffusion_copilot.server.settings import Settings

    client = await ready_client(default_engine)
    try:
        status = client.status
        request = with_context(CursorRequest(uri="cut.py", path="cut.py", language="python", prefix=DOCUMENT,
                                             suffix="\n", cursor_offset=len(DOCUMENT), invoked=True),
                               None, context_budget(status.max_prompt_tokens, status.chars_per_token))
        settings = Settings(max_steps=3, canvas_length=32, alternatives=4, seed=0)  # few steps: unsure tokens
        reply = await client.run(run_request(request, settings, pin_healed=False))
    finally:
        await client.close()
    assert isinstance(reply, RunReply), reply
    cuts = 0
    for canvas in reply.canvases:
        assert canvas.token_texts is not None and "".join(canvas.token_texts) == canvas.text
        one = replace(reply, canvases=(canvas,))
        uncut = finished_texts(request, one, PostprocessOptions(min_confidence=0.0))
        if canvas.completion is None or not uncut or not canvas.completion.startswith(uncut[0]):
            continue  # healing not re-created, or the brackets rule added text: no plain prefix to compare with
        tokens = [t for t in _non_blank_tokens(canvas, reply.healed) if t[0] < len(uncut[0])]
        # a token less sure than every one before it, past the first: a threshold between ends the text there
        drops = [(k, min(v for _, v in tokens[:k])) for k in range(1, len(tokens))
                 if tokens[k][1] < min(v for _, v in tokens[:k])]
        if not drops:
            continue
        k, surer = drops[0]
        options = PostprocessOptions(min_confidence=(tokens[k][1] + surer) / 2)
        cut = finished_texts(request, one, options)
        assert cut != uncut, (canvas, tokens, k)
        assert not cut or (len(cut[0]) < len(uncut[0]) and uncut[0].startswith(cut[0].rstrip(")]} ")))
        without_spans = replace(one, canvases=(replace(canvas, token_chars=()),))  # what an older engine sends
        assert finished_texts(request, without_spans, options) == uncut
        cuts += 1
    assert cuts, [(c.text, c.confidence) for c in reply.canvases]


async def test_the_context_budget_fits_the_models_prompt(default_engine: tuple[Path, EngineSpec, Path]) -> None:
    """Sized from the engine's status, the prefix, suffix and cross-file context fit the default model's 320-token
    prompt whole, where the 2,048-token defaults were cut by the tokenizer's cap."""
    import sysconfig

    from transformers import AutoTokenizer

    from diffusion_copilot.engine.prompt.layout import encode_prompt
    from diffusion_copilot.server.completion.inline import context_budget
    from diffusion_copilot.server.context.budget import ContextBudget
    from diffusion_copilot.server.context.documents import DocumentStore

    client = await ready_client(default_engine)
    status = client.status
    await client.close()
    assert status.max_prompt_tokens == 320 and status.chars_per_token is not None
    budget = context_budget(status.max_prompt_tokens, status.chars_per_token)
    capped = AutoTokenizer.from_pretrained(DEFAULT_MODEL)
    whole = AutoTokenizer.from_pretrained(DEFAULT_MODEL)
    whole.model_max_length = 1_000_000
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    store = DocumentStore()
    for name in ("gettext.py", "os.py", "shutil.py"):  # argparse imports gettext and os
        store.open(name, name, "python", (stdlib / name).read_text(encoding="utf-8"))
    text = (stdlib / "argparse.py").read_text(encoding="utf-8")
    for offset in range(5000, len(text), len(text) // 8):
        line_end = text.index("\n", offset)
        sized = store.context("argparse.py", "argparse.py", "python", text[:line_end], text[line_end:], budget)
        ids = encode_prompt(capped, sized.prompt).ids
        assert ids == encode_prompt(whole, sized.prompt).ids, offset  # nothing cut
        assert len(ids) > 0.4 * 320 and sized.definitions  # not starved either, and cross-file context is in
        unsized = store.context("argparse.py", "argparse.py", "python", text[:line_end], text[line_end:],
                                ContextBudget())
        assert encode_prompt(capped, unsized.prompt).ids != encode_prompt(whole, unsized.prompt).ids


async def test_the_fp8_flag_reaches_the_engine(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """`diffusion-copilot engine --fp8` serves the model with fp8 expert weights: its answer is the in-process fp8
    engine's, token for token and confidence for confidence, and not the stock engine's."""
    from diffusion_copilot.engine import Engine, EngineOptions, Job, PromptParts

    socket_path, process = start_engine(tiny_checkpoint, tmp_path, "--fp8")
    try:
        wire = await Wire.open(socket_path)
        await wire.until_ready()
        reply = await wire.call(1, "run", prompt=PROMPT, canvas_length=16, max_steps=4, seed=3)
        await wire.close()
    finally:
        stop_engines(tmp_path)
        process.wait(TIMEOUT_S)
    served = reply["result"]["canvases"][0]

    def in_process(options: EngineOptions) -> tuple[str, list[float]]:
        engine = Engine.load(str(tiny_checkpoint), device="cpu", options=options)
        job = Job(prompt_ids=(0,), canvas_length=16, max_steps=4, seed=3)  # complete() encodes the prompt
        canvas = engine.complete(PromptParts(**PROMPT), job).canvases[0]
        return canvas.text, [round(p, 3) for p in canvas.confidence]

    assert (served["text"], served["confidence"]) == in_process(EngineOptions(fp8=True))
    assert (served["text"], served["confidence"]) != in_process(EngineOptions())


def _zombie_children() -> list[int]:
    """Processes whose parent is this one and that exited without being waited for (<defunct>)."""
    zombies = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if fields[0] == "Z" and int(fields[1]) == os.getpid():
                zombies.append(int(stat.parent.name))
    return zombies


async def test_two_clients_restarting_a_killed_engine_leave_no_zombie(tiny_checkpoint: Path, tmp_path: Path) -> None:
    spec = EngineSpec(model=str(tiny_checkpoint), device="cpu")
    first, second = EngineClient(spec, directory=tmp_path), EngineClient(spec, directory=tmp_path)
    try:
        assert await first.connect() is None and await second.connect() is None
        lock = engine_paths(spec, tmp_path)[1]
        pid = int(lock.read_text())
        os.kill(pid, signal.SIGKILL)
        # Both clients see the engine go and race to start a new one: one engine wins, the other exits at once.

        async def ready(client: EngineClient) -> None:
            while (await client.refresh_status()).state not in (EngineState.READY, EngineState.BUSY):
                await asyncio.sleep(0.1)

        await asyncio.wait_for(asyncio.gather(ready(first), ready(second)), TIMEOUT_S)
        assert int(lock.read_text()) != pid
        deadline = time.monotonic() + TIMEOUT_S
        while _zombie_children() and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        assert _zombie_children() == []
    finally:
        await first.close()
        await second.close()
        stop_engines(tmp_path)


async def test_an_explicit_request_shows_candidates_the_confidence_cut_would_hide(
    default_engine: tuple[Path, EngineSpec, Path],
) -> None:
    """With a cut no token passes, an automatic trigger shows nothing and an explicit request still shows its
    candidates, through the language server's own completer."""
    from diffusion_copilot.server.completion.cache import CompletionCache
    from diffusion_copilot.server.completion.inline import CursorRequest, InlineCompleter
    from diffusion_copilot.server.settings import Settings

    # above any confidence (they round to 1.0 at most): the cut ends every candidate at its first token
    settings = Settings(max_steps=4, canvas_length=32, alternatives=2, seed=0, min_confidence=1.01, debounce_ms=0)
    client = await ready_client(default_engine)
    try:
        answers = {}
        for invoked in (False, True):
            completer = InlineCompleter(CompletionCache(), lambda error: None)
            request = CursorRequest(uri="ask.py", path="ask.py", language="python", prefix=DOCUMENT, suffix="\n",
                                    cursor_offset=len(DOCUMENT), invoked=invoked)
            answers[invoked] = await completer.complete(request, settings, client, lambda: True)
    finally:
        await client.close()
    assert answers[False] is not None and answers[False].texts == ()
    assert answers[True] is not None and answers[True].texts and all(text.strip() for text in answers[True].texts)
