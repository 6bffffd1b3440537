"""The engine process: one backend (the in-process `Engine` or a vLLM deployment) served to every front end of
the machine over a Unix domain socket (one JSON object per line; docs/protocol.md), with a lock file so that a
second start leaves the first in charge.

The model loads in a thread while the socket already answers; jobs run in a worker thread from a bounded queue,
every request waiting when the worker is free denoised together in one batch (`Backend.complete_batch`); a cancel
(or the client going away) stops the denoising loop before its next step. Where the socket lives is the caller's
business: this module is given the paths.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..backends import Backend, BackendConfig, create_backend
from ..protocol import (
    EngineState,
    EngineStatus,
    ErrorCode,
    error_message,
    status_object,
)
from .batches import Batches, take
from .connections import Connection, Queued, acquire_lock, parse_request

log = logging.getLogger(__name__)
LINE_LIMIT_BYTES = 64 * 1024 * 1024
FAILED_EXIT_S = 5.0  # how long an engine whose model failed to load stays once its last client left


@dataclass(frozen=True)
class ServiceConfig:
    """Which model to serve and where."""

    socket_path: Path
    lock_path: Path
    model: str | None = None
    device: str = "auto"
    dtype: str = "auto"
    idle_exit_s: float = 1800.0
    queue_size: int = 16
    backend: BackendConfig | None = None  # None: the in-process engine with model, device and dtype above


class EngineService:
    """Serves one engine until shut down or idle."""

    def __init__(self, config: ServiceConfig) -> None:
        self.config = config
        self.engine: Backend | None = None
        self.state, self.message = EngineState.LOADING, "loading the model"
        self.has_random_weights: bool | None = None
        self.kernels: str | None = None
        self.gate: str | None = None
        self.max_prompt_tokens: int | None = None
        self.chars_per_token: float | None = None
        self.jobs: queue.Queue[Queued | None] = queue.Queue(maxsize=config.queue_size)
        self.connections: set[Connection] = set()
        self.idle_since = time.monotonic()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stopping: asyncio.Event | None = None
        self.loaded = threading.Event()

    def status(self) -> EngineStatus:
        return EngineStatus(
            state=self.state,
            message=self.message,
            model=self.config.model or "default",
            has_random_weights=self.has_random_weights,
            max_prompt_tokens=self.max_prompt_tokens,
            chars_per_token=self.chars_per_token,
            pid=os.getpid(),
            queue=self.jobs.qsize(),
            kernels=self.kernels,
            gate=self.gate,
        )

    def set_state(self, state: EngineState, message: str) -> None:
        """Change the state and tell every client (event-loop thread only)."""
        if (state, message) == (self.state, self.message):
            return
        self.state, self.message = state, message
        for connection in list(self.connections):
            connection.send({"event": "status", "status": status_object(self.status())})

    def from_worker(self, callback: Any, *args: Any) -> None:
        assert self.loop is not None
        with contextlib.suppress(RuntimeError):  # the loop has closed: the process is exiting
            self.loop.call_soon_threadsafe(callback, *args)

    async def serve(self) -> int:
        """Run until shutdown or idle; 0, or 1 when another engine holds the lock."""
        lock = acquire_lock(self.config.lock_path)
        if lock is None:
            log.warning("an engine is already running for %s", self.config.socket_path)
            return 1
        self.loop, self.stopping = asyncio.get_running_loop(), asyncio.Event()
        with contextlib.suppress(FileNotFoundError):
            self.config.socket_path.unlink()  # a stale socket of a dead engine; the lock says it is ours now
        old_umask = os.umask(0o177)
        try:
            server = await asyncio.start_unix_server(
                self.handle, path=str(self.config.socket_path), limit=LINE_LIMIT_BYTES
            )
        finally:
            os.umask(old_umask)
        threading.Thread(target=self.load, name="engine-load", daemon=True).start()
        threading.Thread(target=self.work, name="engine-worker", daemon=True).start()
        log.info("engine listening on %s (pid %d)", self.config.socket_path, os.getpid())
        try:
            while not self.stopping.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), timeout=1.0)
                idle = not self.connections and self.jobs.empty()
                # an engine that could not load its model only reports that: it goes once nobody is told
                has_failed = self.engine is None and self.state is EngineState.ERROR
                limit_s = FAILED_EXIT_S if has_failed else self.config.idle_exit_s
                if idle and time.monotonic() - self.idle_since > limit_s:
                    log.info("no clients for %.0f s: exiting", limit_s)
                    break
        finally:
            server.close()
            with contextlib.suppress(FileNotFoundError):
                self.config.socket_path.unlink()
            for connection in list(self.connections):
                for cancel in connection.jobs.values():
                    cancel.set()
                connection.writer.close()
            with contextlib.suppress(queue.Full):
                self.jobs.put_nowait(None)
            lock.close()
        return 0

    def load(self) -> None:
        """Load the model (loader thread)."""
        try:
            backend = self.config.backend or BackendConfig(
                model=self.config.model, device=self.config.device, dtype=self.config.dtype
            )
            engine = create_backend(backend)
        except Exception as err:  # a bad checkpoint is reported to every client, not raised
            log.exception("loading the model failed")
            self.from_worker(self.set_state, EngineState.ERROR, f"loading the model failed: {err}")
        else:
            self.max_prompt_tokens, self.chars_per_token = engine.max_prompt_tokens, engine.chars_per_token
            self.engine, self.has_random_weights = engine, engine.has_random_weights
            self.kernels = engine.kernels
            self.gate = getattr(engine, "gate", None)  # a backend without one (vLLM) has no fitted gate
            note = " (random weights: the text is noise)" if engine.has_random_weights else ""
            weights_note = getattr(engine, "weights_note", None)
            note += f"; {weights_note}" if weights_note else ""
            self.from_worker(self.set_state, EngineState.READY, f"ready{note}")
        self.loaded.set()

    def work(self) -> None:
        """Run queued jobs (worker thread): every waiting one together, as one batch, when the engine batches."""
        self.loaded.wait()
        batches = Batches(self.engine, self.from_worker, lambda: self.message)
        stop = False
        while not stop:
            batch, stop = take(self.jobs, self.engine.max_batch_rows if self.engine is not None else 1)
            if any(not item.cancel.is_set() for item in batch) and self.engine is not None:
                self.from_worker(self.set_state, EngineState.BUSY, "completing")
            try:
                batches.run(batch)
            except Exception as err:  # an engine bug answers these requests and keeps the worker alive
                log.exception("job failed")
                for item in batch:
                    batches.reply_error(item, ErrorCode.ENGINE_ERROR, f"{type(err).__name__}: {err}")
            if self.jobs.empty() and self.engine is not None:
                self.from_worker(self.set_state, EngineState.READY, self.status_ready_message())

    def status_ready_message(self) -> str:
        return "ready (random weights: the text is noise)" if self.has_random_weights else "ready"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one client connection (event loop)."""
        connection = Connection(writer)
        self.connections.add(connection)
        try:
            while True:
                try:
                    line = await reader.readline()
                except (ValueError, asyncio.LimitOverrunError):
                    connection.send(error_message(None, ErrorCode.BAD_REQUEST, "line too long"))
                    break
                except ConnectionError:
                    break
                if not line:
                    break
                self.dispatch(connection, line)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):  # cancelled: the service is shutting down
            pass
        finally:
            for cancel in connection.jobs.values():
                cancel.set()  # nobody is waiting for these any more
            self.connections.discard(connection)
            if not self.connections:
                self.idle_since = time.monotonic()
            writer.close()

    def dispatch(self, connection: Connection, line: bytes) -> None:
        """Answer one request line."""
        request = parse_request(line)
        if isinstance(request, dict):  # not a request: the error to send
            connection.send(request)
            return
        request_id, method, params = request
        if method == "status":
            connection.send({"id": request_id, "result": status_object(self.status())})
        elif method == "run":
            self.submit(connection, request_id, params)
        elif method == "cancel":
            cancel = connection.jobs.get(params.get("job"))
            if cancel is not None:
                cancel.set()
            connection.send({"id": request_id, "result": {"cancelled": cancel is not None}})
        elif method == "shutdown":
            connection.send({"id": request_id, "result": {}})
            assert self.stopping is not None
            self.stopping.set()
        else:
            connection.send(error_message(request_id, ErrorCode.BAD_REQUEST, f"unknown method {method!r}"))

    def submit(self, connection: Connection, request_id: Any, params: dict[str, Any]) -> None:
        if self.state is EngineState.ERROR and self.engine is None:
            connection.send(error_message(request_id, ErrorCode.LOAD_FAILED, self.message))
            return
        if request_id is None or request_id in connection.jobs:
            connection.send(error_message(request_id, ErrorCode.BAD_REQUEST, "run needs a new id"))
            return
        item = Queued(connection, request_id, params, threading.Event())
        try:
            self.jobs.put_nowait(item)
        except queue.Full:
            connection.send(error_message(request_id, ErrorCode.QUEUE_FULL, "the engine is busy"))
            return
        connection.jobs[request_id] = item.cancel


def serve(config: ServiceConfig) -> int:
    """Run the engine process in the foreground; the exit status."""
    return asyncio.run(EngineService(config).serve())
