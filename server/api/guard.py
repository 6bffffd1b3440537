"""The HTTP API's outer layer, as plain ASGI middleware: Bearer auth, the Host check that keeps browsers' DNS
rebinding out of a loopback server without a token, JSON-only request bodies, the body size limit, and request
metrics. Everything it refuses is answered here, in the API's error shape, before the app sees it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.exceptions import HTTPException

from ..access import is_loopback, token_matches
from .metrics import ApiMetrics

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]
BODY_PATHS = ("/v1/completions", "/v1/code/completions")
ENDPOINTS = ("/v1/completions", "/v1/code/completions", "/v1/health", "/v1/models", "/metrics", "/openapi.json")


def host_of(header: str) -> str:
    """The host part of a Host header (`127.0.0.1:8765`, `[::1]:8765`, `localhost`)."""
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def endpoint_label(path: str) -> str:
    return path if path in ENDPOINTS else "other"


async def send_error(send: Send, status: int, kind: str, message: str, code: str,
                     headers: tuple[tuple[bytes, bytes], ...] = ()) -> None:
    body = json.dumps({"error": {"message": message, "type": kind, "code": code, "param": None}}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": body})


class BodyTooLarge(HTTPException):
    """A request body that grew past the limit while it was read (an HTTPException, so that the framework's
    body reader passes it on and the app answers it as a 413)."""

    def __init__(self, limit_bytes: int) -> None:
        super().__init__(413, f"the request body is larger than {limit_bytes} bytes")


class Guard:
    """Wraps the app: refuses what must not reach it and records every answer in the metrics."""

    def __init__(self, app: App, metrics: ApiMetrics, token: str | None, max_body_bytes: int) -> None:
        self.app = app
        self.metrics = metrics
        self.token = token
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def recording_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            refusal = self.refusal(scope)
            if refusal is not None:
                await send_error(recording_send, *refusal)
                return
            await self.app(scope, self.limited(receive), recording_send)
        except BodyTooLarge:
            if status[0] == 500:  # nothing sent yet
                await send_error(recording_send, 413, "invalid_request_error",
                                 f"the request body is larger than {self.max_body_bytes} bytes", "too_large")
        finally:
            self.metrics.request_done(endpoint_label(scope["path"]), status[0], time.perf_counter() - started)

    def refusal(self, scope: Scope) -> tuple[Any, ...] | None:
        """(status, type, message, code[, headers]) when the request must be refused before the app sees it."""
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if self.token is None and not is_loopback(host_of(headers.get("host", "localhost"))):
            return (403, "authentication_error", "this server runs without a token and answers only requests "
                    "addressed to a loopback host", "bad_host")
        if self.token is not None:
            given = headers.get("authorization", "")
            scheme, _, credential = given.partition(" ")
            if scheme.lower() != "bearer" or not token_matches(credential.strip(), self.token):
                return (401, "authentication_error", "missing or wrong 'Authorization: Bearer <token>' header",
                        "unauthorized", ((b"www-authenticate", b"Bearer"),))
        if scope["method"] == "POST" and scope["path"] in BODY_PATHS:
            media = headers.get("content-type", "").split(";")[0].strip().lower()
            if media != "application/json":
                return (415, "invalid_request_error", "request bodies must be JSON (Content-Type: "
                        "application/json)", "unsupported_media_type")
            length = headers.get("content-length")
            if length is not None and (not length.isdigit() or int(length) > self.max_body_bytes):
                return (413, "invalid_request_error", f"the request body is larger than {self.max_body_bytes} "
                        "bytes", "too_large")
        return None

    def limited(self, receive: Receive) -> Receive:
        """`receive` that raises BodyTooLarge once the body passes the limit (chunked bodies have no length)."""
        seen = 0

        async def receive_limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body_bytes:
                    raise BodyTooLarge(self.max_body_bytes)
            return message

        return receive_limited
