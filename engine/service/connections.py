"""The engine socket's clients and the lock file: one connection per client, a queued `run`, reading one request
line, and the lock that keeps one engine per model and machine."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from ..protocol import ErrorCode, error_message
from ..user_dirs import open_private, private_dir


@dataclass(eq=False)
class Connection:
    """One connected client; written to only from the event loop."""

    writer: asyncio.StreamWriter
    jobs: dict[Any, threading.Event] = field(default_factory=dict)  # request id → cancel flag

    def send(self, message: dict[str, Any]) -> None:
        if self.writer.is_closing():
            return
        self.writer.write((json.dumps(message, separators=(",", ":")) + "\n").encode())


@dataclass(frozen=True)
class Queued:
    """A `run` waiting for the worker."""

    connection: Connection
    request_id: Any
    params: dict[str, Any]
    cancel: threading.Event


def parse_request(line: bytes) -> tuple[Any, Any, dict[str, Any]] | dict[str, Any]:
    """(id, method, params) of a request line, or the error message to answer it with."""
    try:
        message = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        return error_message(None, ErrorCode.BAD_REQUEST, f"not JSON: {err}")
    if not isinstance(message, dict):
        return error_message(None, ErrorCode.BAD_REQUEST, "expected a JSON object")
    request_id, method = message.get("id"), message.get("method")
    params = message.get("params") or {}
    if not isinstance(params, dict):
        return error_message(request_id, ErrorCode.BAD_REQUEST, "params: object")
    return request_id, method, params


def acquire_lock(path: Path) -> TextIO | None:
    """Hold `path` locked for the life of the process (the file records the pid); None if another holds it."""
    private_dir(path.parent)
    handle = os.fdopen(open_private(path, os.O_RDWR), "r+")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle
