"""The language server's pygls protocol: it types the messages transport.py has checked, answers a request whose
params do not fit with -32602, and logs a client's other mistakes on one line, never showing them to the user.
It also notes when each inline-completion request arrived, for the server's own timings.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Generator
from typing import Any
from urllib.parse import unquote

from cattrs import transform_error
from cattrs.errors import ClassValidationError
from lsprotocol import types as t
from pygls.exceptions import JsonRpcInvalidParams, JsonRpcInvalidRequest
from pygls.protocol import (
    JsonRPCNotification,
    JsonRPCRequestMessage,
    JsonRPCResponseMessage,
    LanguageServerProtocol,
    lsp_method,
)

from .next_edit import EXPERIMENTAL

log = logging.getLogger(__name__)


class CopilotProtocol(LanguageServerProtocol):
    """pygls' protocol, taking messages that transport.py has checked: a request whose params do not parse is
    answered -32602 and a client's other mistakes are logged on one line, never shown to the user; it also notes
    when each inline-completion request arrived (for the server's own timings)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.received: dict[Any, float] = {}  # request id → perf_counter when its message was read

    def receive(self, message: dict[str, Any]) -> None:
        """Handle one checked message."""
        structured = self.structure_message(message)
        if structured is not None:
            self.handle_message(structured)

    def send_error(self, msg_id: int | str | None, code: int, message: str) -> None:
        """Answer a request (or, with id null, a message whose id is unknown) with a JSON-RPC error."""
        self._send_data({"jsonrpc": "2.0", "id": msg_id, "error": {"code": code, "message": message}})

    def structure_message(self, data: dict[str, Any]) -> Any:
        """The typed message, or None (answered -32602 when it is a request) when its params do not fit."""
        method, msg_id = data.get("method"), data.get("id")
        if method is None:
            return self.structured_response(data)
        if method == t.TEXT_DOCUMENT_INLINE_COMPLETION and msg_id is not None:
            if len(self.received) > 1024:  # ids of requests cancelled before their handler ran
                self.received.clear()
            self.received[msg_id] = time.perf_counter()
        fallback = JsonRPCRequestMessage if msg_id is not None else JsonRPCNotification
        try:
            return self._converter.structure(data, self.get_message_type(method) or fallback)
        except Exception as err:
            problems = problems_of(err)
            log.warning("invalid params for %s%s: %s", method, f" (request {msg_id})" if msg_id is not None
                        else "", "; ".join(problems[:3]))
            if msg_id is not None:
                self.send_error(msg_id, JsonRpcInvalidParams.CODE, f"invalid params for {method}: {problems[0]}")
            return None

    def structured_response(self, data: dict[str, Any]) -> Any:
        """A client's response to one of the server's requests, typed as that request's result; one that does not
        fit becomes an error response, so whatever awaits it fails instead of waiting for ever."""
        msg_id = data["id"]  # lsp_transport.parsed: a message without a method has one
        kind = t.ResponseErrorMessage if "error" in data else self._result_types.pop(msg_id, None) or \
            JsonRPCResponseMessage
        try:
            return self._converter.structure(data, kind)
        except Exception as err:
            problems = problems_of(err)
            log.warning("malformed response to request %s: %s", msg_id, "; ".join(problems[:3]))
            return t.ResponseErrorMessage(id=msg_id, error=t.ResponseError(
                code=JsonRpcInvalidRequest.CODE, message=f"malformed response: {problems[0]}"))

    @lsp_method(t.INITIALIZE)
    def lsp_initialize(self, params: t.InitializeParams) -> Generator[Any, Any, t.InitializeResult]:
        """pygls' own, with the next-edit request advertised in the capabilities' experimental section."""
        result: t.InitializeResult = yield from super().lsp_initialize(params)
        result.capabilities.experimental = EXPERIMENTAL
        return result

    @lsp_method(t.TEXT_DOCUMENT_DID_CHANGE)
    def lsp_text_document__did_change(self, params: t.DidChangeTextDocumentParams) -> Generator[Any, Any, None]:
        """pygls' own, for a document that is open; a change to any other is the client's mistake: logged."""
        if self.workspace.text_documents.get(unquote(params.text_document.uri)) is None:
            log.warning("didChange for %s, which is not open: ignored", params.text_document.uri)
            return
        yield from super().lsp_text_document__did_change(params)


def problems_of(err: Exception) -> list[str]:
    """What is wrong with a message that does not fit its type, one line each (`field @ $.path`)."""
    return transform_error(err) if isinstance(err, ClassValidationError) else [f"{type(err).__name__}: {err}"]
