"""The asyncio client of the machine's engine process (docs/protocol.md, "The engine process"): finds the
running engine or starts one detached (spec.py says which and how), restarts it when it dies, and relays its status.

Never blocks the event loop and never raises into its caller: failures come back as `EngineError` values.
Of the engine package it imports only the torch-free `protocol` and `user_dirs` (torch would load into every
language server).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from diffusion_copilot.engine.protocol import (
    EngineError,
    EngineState,
    EngineStatus,
    ErrorCode,
    RunReply,
    RunRequest,
    engine_error,
    engine_status,
    error_message,
    run_params,
    run_reply,
)
from diffusion_copilot.engine.user_dirs import open_private

from .spec import EngineSpec, engine_command, engine_environment, engine_paths, private_runtime_dir, runtime_dir

log = logging.getLogger(__name__)
LINE_LIMIT_BYTES = 64 * 1024 * 1024
REAP_INTERVAL_S = 1.0  # how often a client waits for the engines it started that have exited
MAX_RESTARTS, RESTART_WINDOW_S = 3, 60.0


class EngineClient:
    """One connection to the engine process of `spec`; safe to use from many tasks of one event loop."""

    def __init__(self, spec: EngineSpec, on_status: Callable[[EngineStatus], None] | None = None,
                 directory: Path | None = None, start_timeout_s: float = 60.0) -> None:
        self.spec = spec
        self.directory = directory or runtime_dir()
        self.on_status = on_status
        self.start_timeout_s = start_timeout_s
        self.status = EngineStatus(EngineState.LOADING, "starting the engine")
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.draft_handlers: dict[int, Callable[[int, tuple[str, ...]], None]] = {}  # run id → on_draft
        self.next_id = 0
        self.connecting = asyncio.Lock()
        self.listener: asyncio.Task[None] | None = None
        self.process: subprocess.Popen[bytes] | None = None  # the engine this client started last
        self.children: list[subprocess.Popen[bytes]] = []  # every engine it started that has not been waited for
        self.reaper: asyncio.Task[None] | None = None
        self.closed = False
        self.restarts: list[float] = []  # monotonic times of restarts after the engine stopped
        self.last_attempt = float("-inf")
        self.reconnect: asyncio.Task[EngineError | None] | None = None
        self.may_start = True  # False once the owner is stopping: it must not leave a fresh engine behind

    @property
    def is_connected(self) -> bool:
        return self.writer is not None and not self.writer.is_closing()

    def ensure_connecting(self, retry_s: float = 5.0) -> None:
        """Start connecting in the background if the engine is not connected (at most every `retry_s`)."""
        now = time.monotonic()
        if self.is_connected or self.connecting.locked() or now - self.last_attempt < retry_s:
            return
        self.last_attempt = now
        self.reconnect = asyncio.get_running_loop().create_task(self.connect())

    def set_status(self, status: EngineStatus) -> None:
        if status != self.status:
            self.status = status
            if self.on_status is not None:
                self.on_status(status)

    async def connect(self) -> EngineError | None:
        """Connect to the running engine, starting one if none answers."""
        async with self.connecting:
            if self.is_connected:
                return None
            socket_path, _, log_path = engine_paths(self.spec, self.directory)
            if await self._open(socket_path):
                return await self._hello()
            if not self.may_start:
                return self._fail(EngineError(ErrorCode.ENGINE_LOST,
                                              "the engine stopped while this client was closing"))
            error = self._spawn(log_path)
            if error is not None:
                return self._fail(error)
            deadline = time.monotonic() + self.start_timeout_s
            delay_s = 0.02
            while time.monotonic() < deadline:
                if await self._open(socket_path):
                    return await self._hello()
                if self.process is not None and self.process.poll() not in (None, 0, 1):
                    return self._fail(EngineError(ErrorCode.START_FAILED, f"the engine exited with status "
                                                  f"{self.process.returncode}; see {log_path}"))
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 1.5, 0.25)
            return self._fail(EngineError(
                ErrorCode.START_FAILED, f"no engine answered within {self.start_timeout_s:.0f} s; see {log_path}"))

    def _fail(self, error: EngineError) -> EngineError:
        self.set_status(EngineStatus(EngineState.ERROR, error.message, self.spec.model))
        return error

    async def _open(self, socket_path: Path) -> bool:
        try:
            self.reader, self.writer = await asyncio.open_unix_connection(str(socket_path),
                                                                          limit=LINE_LIMIT_BYTES)
        except OSError:
            return False
        self.listener = asyncio.get_running_loop().create_task(self._listen(self.reader))
        return True

    def _spawn(self, log_path: Path) -> EngineError | None:
        """Start the engine detached from this process, so that it outlives this client."""
        command = engine_command(self.spec, self.directory)
        log.info("starting the engine: %s", " ".join(command))
        try:
            private_runtime_dir(self.directory)
            with os.fdopen(open_private(log_path, os.O_WRONLY | os.O_APPEND), "ab") as log_file:
                self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log_file,
                                                stderr=log_file, start_new_session=True, close_fds=True,
                                                env=engine_environment(self.spec))
        except OSError as err:
            return EngineError(ErrorCode.START_FAILED, f"cannot start the engine ({' '.join(command)}): {err}")
        self.children.append(self.process)
        if self.reaper is None or self.reaper.done():
            self.reaper = asyncio.get_running_loop().create_task(self._reap())
        return None

    async def _reap(self) -> None:
        """Wait for each engine this client started once it exits (the one that lost a race to start, one that
        crashed), so none stays a zombie while this client runs; an engine that runs on is left running."""
        while self.children:
            self.children = [child for child in self.children if child.poll() is None]
            await asyncio.sleep(REAP_INTERVAL_S)

    async def _hello(self) -> EngineError | None:
        reply = await self._request("status", {})
        if isinstance(reply, EngineError):
            return reply
        self.set_status(engine_status(reply))
        return None

    async def _listen(self, reader: asyncio.StreamReader) -> None:
        """Route replies to their requests and status events to `on_status`, until the engine goes away."""
        try:
            while line := await reader.readline():
                try:
                    message = json.loads(line)
                except json.JSONDecodeError:
                    log.warning("engine sent a line that is not JSON: %r", line[:200])
                    continue
                if message.get("event") == "status":
                    self.set_status(engine_status(message.get("status", {})))
                elif message.get("event") == "draft" and message.get("job") in self.draft_handlers:
                    try:
                        self.draft_handlers[message["job"]](int(message.get("step", 0)),
                                                            tuple(str(t) for t in message.get("texts", ())))
                    except Exception:  # one caller's bug must not drop the connection every caller shares
                        log.exception("a draft handler failed")
                future = self.pending.pop(message["id"], None) if "id" in message else None
                if future is not None and not future.done():
                    future.set_result(message)
        except (OSError, ValueError) as err:
            log.warning("lost the engine connection: %s", err)
        except asyncio.CancelledError:
            self._disconnected(is_lost=False)  # this client is closing, or its process ending: no restart
            raise
        finally:
            if self.writer is not None:
                self._disconnected()

    def _disconnected(self, is_lost: bool = True) -> None:
        """Drop the connection and fail the requests waiting on it; when the engine was lost (not this client
        closing), say so and start reconnecting."""
        if self.writer is not None:
            self.writer.close()
        self.writer = self.reader = None
        for future in self.pending.values():
            if not future.done():
                future.set_result(error_message(None, ErrorCode.ENGINE_LOST, "the engine process stopped"))
        self.pending.clear()
        if self.closed or not self.may_start or not is_lost:
            return
        now = time.monotonic()
        self.restarts = [t for t in self.restarts if now - t < RESTART_WINDOW_S] + [now]
        if len(self.restarts) > MAX_RESTARTS:
            self.set_status(EngineStatus(EngineState.ERROR, "the engine process keeps stopping; see "
                                         f"{engine_paths(self.spec, self.directory)[2]}", self.spec.model))
            return  # the next request tries again
        self.set_status(EngineStatus(EngineState.ERROR, "the engine process stopped; restarting it",
                                     self.spec.model))
        self.reconnect = asyncio.get_running_loop().create_task(self.connect())

    async def _request(self, method: str, params: dict[str, Any],
                       on_draft: Callable[[int, tuple[str, ...]], None] | None = None
                       ) -> dict[str, Any] | EngineError:
        """Send one request and wait for its reply's `result`."""
        if not self.is_connected:
            error = await self.connect()
            if error is not None:
                return error
        assert self.writer is not None
        self.next_id += 1
        request_id = self.next_id
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[request_id] = future
        if on_draft is not None:
            self.draft_handlers[request_id] = on_draft
        try:
            line = json.dumps({"id": request_id, "method": method, "params": params})
            self.writer.write(line.encode() + b"\n")
            await self.writer.drain()
            message = await future
        except asyncio.CancelledError:
            self.pending.pop(request_id, None)
            if method == "run" and self.is_connected:
                assert self.writer is not None
                self.next_id += 1
                cancel = {"id": self.next_id, "method": "cancel", "params": {"job": request_id}}
                self.writer.write(json.dumps(cancel).encode() + b"\n")
            raise
        except OSError as err:
            self.pending.pop(request_id, None)
            return EngineError(ErrorCode.ENGINE_LOST, f"the engine connection failed: {err}")
        finally:
            self.draft_handlers.pop(request_id, None)
        if "error" in message:
            return engine_error(message["error"])
        result: dict[str, Any] = message.get("result") or {}
        return result

    async def run(self, request: RunRequest, on_draft: Callable[[int, tuple[str, ...]], None] | None = None
                  ) -> RunReply | EngineError:
        """Run one completion job; cancelling the awaiting task cancels the job in the engine. With
        `request.drafts`, `on_draft(step, texts)` gets each step's canvas texts."""
        reply = await self._request("run", run_params(request), on_draft)
        return reply if isinstance(reply, EngineError) else run_reply(reply)

    async def refresh_status(self) -> EngineStatus:
        """Ask the engine for its status (connecting or starting it if needed)."""
        reply = await self._request("status", {})
        if not isinstance(reply, EngineError):
            self.set_status(engine_status(reply))
        return self.status

    async def restart(self) -> EngineError | None:
        """Stop the engine process and start a fresh one."""
        await self.shutdown_engine()
        return await self.connect()

    async def shutdown_engine(self) -> None:
        """Ask the engine process to exit and wait until its connection closes."""
        if not self.is_connected:
            return
        listener = self.listener
        self.closed = True
        try:
            await self._request("shutdown", {})
            if listener is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait_for(asyncio.shield(listener), timeout=10)
        except TimeoutError:
            log.warning("the engine did not stop within 10 s")
        finally:
            self.closed = False

    def stop_starting(self) -> None:
        """Start no engine from now on (the owner is stopping); connecting to a running one still works."""
        self.may_start = False

    async def close(self) -> None:
        """Drop the connection; the engine keeps running for other clients."""
        self.closed = True
        self.may_start = False
        if self.reconnect is not None and not self.reconnect.done():
            self.reconnect.cancel()
        if self.reaper is not None:
            self.reaper.cancel()
        self.children = [child for child in self.children if child.poll() is None]
        if self.writer is not None:
            self.writer.close()
        if self.listener is not None:
            self.listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.listener
