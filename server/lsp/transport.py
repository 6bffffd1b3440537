"""The language server's wire: Content-Length frames read from stdin or a TCP connection, each body decoded (invalid
UTF-8 replaced), parsed and checked as a JSON-RPC 2.0 message before pygls sees it, and the TCP listener with its
token check before `initialize`. A malformed message is answered here (-32700, -32600) and logged on one line; what
a message means is protocol.py's business.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from pygls.io_ import StdinAsyncReader, StdoutWriter

from ..access import token_matches
from ..valid_text import text_of, valid_json

log = logging.getLogger(__name__)

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
REFUSED = -32000  # JSON-RPC's range for implementation-defined server errors: not authenticated, or busy
MAX_UNAUTHENTICATED_BYTES = 64 * 1024  # the largest message read from a client that has not shown its token
FIRST_MESSAGE_TIMEOUT_S = 30.0  # a connection that sends nothing for this long is closed
HEADERS = ("content-length", "content-type")


class Reader(Protocol):
    def readline(self) -> Awaitable[bytes]: ...

    def readexactly(self, n: int) -> Awaitable[bytes]: ...


class Receiver(Protocol):
    """The protocol object that handles checked messages (protocol.py's `CopilotProtocol`)."""

    def receive(self, message: dict[str, Any]) -> None: ...

    def send_error(self, msg_id: int | str | None, code: int, message: str) -> None: ...


SetWriter = Callable[[Any], None]  # pygls' protocol.set_writer: where its messages go


class FrameError(Exception):
    """A header that is not LSP's (`Content-Length: N`, optionally `Content-Type`)."""


@dataclass(frozen=True)
class Refusal:
    """The JSON-RPC error a malformed message is answered with."""

    msg_id: int | str | None
    code: int
    message: str


def frame(message: dict[str, Any]) -> bytes:
    """A message as one Content-Length frame."""
    body = json.dumps(message).encode()
    return b"Content-Length: %d\r\n\r\n%b" % (len(body), body)


def error_message(msg_id: int | str | None, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": msg_id, "error": {"code": code, "message": message}}


async def read_frame(reader: Reader, strict: bool, max_bytes: int | None = None) -> bytes | None:
    """The next message body; None at the end of the input. FrameError, after reading up to the offending line, for
    a header without a usable Content-Length, a body longer than `max_bytes`, or (when `strict`) a header line that
    is not LSP's, which is otherwise logged and skipped."""
    length: int | None = None
    while True:
        try:
            line = await reader.readline()
        except ValueError as err:  # asyncio's line limit
            raise FrameError(f"header line too long: {err}") from None
        except ConnectionError:
            return None
        if not line:
            return None
        if not line.strip():
            if length is None:
                raise FrameError("a header without Content-Length")
            break
        name, sep, value = line.decode("latin-1").partition(":")
        if not sep or name.strip().lower() not in HEADERS:
            if strict:
                raise FrameError(f"not an LSP header: {line[:80]!r}")
            log.warning("skipped a line that is not an LSP header: %r", line[:80])
            continue
        if name.strip().lower() == "content-length":
            if not value.strip().isdigit():
                raise FrameError(f"bad Content-Length: {value.strip()[:40]!r}")
            length = int(value)
    if max_bytes is not None and length > max_bytes:
        raise FrameError(f"a {length}-byte message before authentication (at most {max_bytes})")
    try:
        body = await reader.readexactly(length)
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    return body if len(body) == length else None


def parsed(body: bytes) -> dict[str, Any] | Refusal:
    """A message body as a checked JSON-RPC 2.0 object with valid text, or the error it must be answered with."""
    try:
        message = json.loads(text_of(body))
    except json.JSONDecodeError as err:
        return Refusal(None, PARSE_ERROR, f"parse error: the body is not JSON ({err})")
    if not isinstance(message, dict):
        return Refusal(None, INVALID_REQUEST, "invalid request: a message must be a JSON object (batches are not "
                       "supported)")
    msg_id = message.get("id")
    known_id = msg_id if isinstance(msg_id, int | str) and not isinstance(msg_id, bool) else None
    if message.get("jsonrpc") != "2.0":
        return Refusal(known_id, INVALID_REQUEST, 'invalid request: "jsonrpc" must be "2.0"')
    if "id" in message and known_id is None:
        return Refusal(None, INVALID_REQUEST, "invalid request: an id must be a string or an integer")
    if "method" in message and not isinstance(message["method"], str):
        return Refusal(known_id, INVALID_REQUEST, "invalid request: the method must be a string")
    if "method" not in message and known_id is None:
        return Refusal(None, INVALID_REQUEST, "invalid request: neither a method nor an id")
    return dict(valid_json(message))


def handle_body(receiver: Receiver, body: bytes) -> None:
    """Check one message and hand it on, or answer its refusal."""
    message = parsed(body)
    if isinstance(message, Refusal):
        log.warning("%s", message.message)
        receiver.send_error(message.msg_id, message.code, message.message)
    else:
        deliver(receiver, message)


def deliver(receiver: Receiver, message: dict[str, Any]) -> None:
    """Hand a checked message on; a server bug while doing so is logged and the connection goes on."""
    try:
        receiver.receive(message)
    except Exception:
        log.exception("failed to handle %s", message.get("method") or f"the response to {message.get('id')}")


async def message_loop(reader: Reader, receiver: Receiver, strict: bool) -> None:
    """Handle messages until the input ends; a bad header ends a `strict` connection, else it is skipped."""
    while True:
        try:
            body = await read_frame(reader, strict)
        except FrameError as err:
            log.warning("%s%s", err, ": closing the connection" if strict else "")
            if strict:
                return
            continue
        if body is None:
            return
        handle_body(receiver, body)


def authentication_refusal(message: dict[str, Any] | Refusal, token: str) -> Refusal | None:
    """Why the first message of a TCP connection does not authenticate it (None: it does). It must be `initialize`
    with the server's token in `initializationOptions.token`; the token is taken out of the message."""
    if isinstance(message, Refusal):
        return message
    msg_id = message.get("id")
    params = message.get("params")
    options = params.get("initializationOptions") if isinstance(params, dict) else None
    given = options.pop("token", None) if isinstance(options, dict) else None
    if message.get("method") != "initialize" or msg_id is None:
        return Refusal(msg_id, REFUSED, "authentication required: the first message must be initialize with "
                       "initializationOptions.token")
    if not isinstance(given, str) or not token_matches(given, token):
        return Refusal(msg_id, REFUSED, "authentication failed: missing or wrong initializationOptions.token")
    return None


class Listener:
    """A TCP language server: one client session at a time, each connection authenticated first when there is a
    token; the server ends with its session, as over stdio."""

    def __init__(self, receiver: Receiver, set_writer: SetWriter, token: str | None) -> None:
        self.receiver = receiver
        self.set_writer = set_writer
        self.token = token
        self.in_session = False
        self.ended = asyncio.Event()

    async def serve(self, host: str, port: int) -> None:
        server = await asyncio.start_server(self.connection, host, port)
        log.info("listening on %s", ", ".join(str(s.getsockname()) for s in server.sockets))
        async with server:
            await self.ended.wait()

    async def connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        try:
            first = await self.first_message(reader, writer, peer)
            if first is None:
                return
            self.in_session = True
            log.info("client %s connected", peer)
            self.set_writer(writer)
            try:
                deliver(self.receiver, first)
                await message_loop(reader, self.receiver, strict=True)
            except SystemExit:  # pygls' answer to the client's exit notification
                pass
            finally:
                log.info("client %s disconnected", peer)
                self.ended.set()
        finally:
            writer.close()

    async def first_message(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: Any
                            ) -> dict[str, Any] | None:
        """The connection's first message when it may start a session; None (answered) when it may not."""
        limit = MAX_UNAUTHENTICATED_BYTES if self.token is not None else None
        try:
            body = await asyncio.wait_for(read_frame(reader, True, limit), FIRST_MESSAGE_TIMEOUT_S)
        except (FrameError, TimeoutError) as err:
            log.warning("client %s: %s: closing the connection", peer, err or "no message")
            return None
        if body is None:
            return None
        message = parsed(body)
        refusal = authentication_refusal(message, self.token) if self.token is not None else None
        if isinstance(message, Refusal):
            refusal = message
        elif refusal is None and self.in_session:
            refusal = Refusal(message.get("id"), REFUSED, "another client is connected")
        if refusal is not None:
            log.warning("client %s refused: %s", peer, refusal.message)
            writer.write(frame(error_message(refusal.msg_id, refusal.code, refusal.message)))
            with contextlib.suppress(ConnectionError):
                await writer.drain()
            return None
        return message if isinstance(message, dict) else None


class ClientWriter(StdoutWriter):
    """Standard output to the client, which may close it at any moment (an editor that quits): after the first
    write that finds it closed, one log line, and later messages are dropped instead of failing their senders."""

    def __init__(self, stdout: Any) -> None:
        super().__init__(stdout)
        self.is_closed = False

    def write(self, data: bytes) -> None:
        if self.is_closed:
            return
        try:
            super().write(data)
        except (BrokenPipeError, ConnectionResetError, ValueError):  # ValueError: the stream itself was closed
            self.is_closed = True
            log.info("the client closed its end of the connection; dropping what is left to send")


def serve_stdio(receiver: Receiver, set_writer: SetWriter, executor: ThreadPoolExecutor) -> None:
    """Serve over stdin and stdout until the input ends or the client sends exit."""
    set_writer(ClientWriter(sys.stdout.buffer))
    reader = StdinAsyncReader(sys.stdin.buffer, executor)
    with contextlib.suppress(KeyboardInterrupt, SystemExit):
        asyncio.run(message_loop(reader, receiver, strict=False))


def serve_tcp(receiver: Receiver, set_writer: SetWriter, host: str, port: int, token: str | None) -> None:
    """Serve one client session over TCP (after its token, when there is one), then return."""
    with contextlib.suppress(KeyboardInterrupt, SystemExit):
        asyncio.run(Listener(receiver, set_writer, token).serve(host, port))
