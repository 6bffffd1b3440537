"""The handlers of the language server: each one only hands its params to `CopilotServer` (server.py)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from lsprotocol import types as t

from .convert import ACCEPT_COMMAND, text_change
from .next_edit import register_next_edit
from .protocol import CopilotProtocol
from .server import CopilotServer

log = logging.getLogger(__name__)

RESTART_COMMAND = "diffusionCopilot.restartEngine"
STATUS_COMMAND = "diffusionCopilot.status"
DID_SHOW = "textDocument/didShowCompletion"
DID_PARTIALLY_ACCEPT = "textDocument/didPartiallyAcceptCompletion"


def build_server(telemetry_path: Path | None = None) -> CopilotServer:
    """A language server with every feature registered."""
    server = CopilotServer(telemetry_path)
    next_edit = register_next_edit(server)

    @server.feature(t.INITIALIZE)
    def initialize(ls: CopilotServer, params: t.InitializeParams) -> None:
        ls.use_indexed_documents()
        ls.apply_settings(params.initialization_options, is_from_workspace=False)

    @server.feature(t.INITIALIZED)
    async def initialized(ls: CopilotServer, params: t.InitializedParams) -> None:
        ls.index_workspace()
        ls.use_engine()
        ls.notify_status()
        await ls.pull_settings()

    @server.feature(t.WORKSPACE_DID_CHANGE_CONFIGURATION)
    async def did_change_configuration(ls: CopilotServer, params: t.DidChangeConfigurationParams) -> None:
        if section_given(params.settings):
            ls.apply_settings(params.settings, is_from_workspace=True)
        else:
            await ls.pull_settings()

    @server.feature(t.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: CopilotServer, params: t.DidOpenTextDocumentParams) -> None:
        ls.document_opened(params.text_document.uri)
        next_edit.document_opened(params.text_document.uri)

    @server.feature(t.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: CopilotServer, params: t.DidChangeTextDocumentParams) -> None:
        ls.document_changed(params.text_document.uri, [text_change(c) for c in params.content_changes])
        next_edit.document_changed(params.text_document.uri)

    @server.feature(t.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: CopilotServer, params: t.DidCloseTextDocumentParams) -> None:
        ls.document_closed(params.text_document.uri)

    @server.feature(t.TEXT_DOCUMENT_INLINE_COMPLETION, t.InlineCompletionOptions())
    async def inline_completion(ls: CopilotServer, params: t.InlineCompletionParams
                                ) -> t.InlineCompletionList | None:
        protocol = ls.protocol
        received = protocol.received.pop(protocol.msg_id, None) if isinstance(protocol, CopilotProtocol) else None
        return await ls.inline_completion(params, received or time.perf_counter())

    @server.feature(DID_SHOW)
    def did_show(ls: CopilotServer, params: Any) -> None:
        ls.record_event(params, None, accepted=False)

    @server.feature(DID_PARTIALLY_ACCEPT)
    def did_partially_accept(ls: CopilotServer, params: Any) -> None:
        length = getattr(params, "acceptedLength", None) or getattr(params, "accepted_length", None)
        ls.record_event(params, int(length) if isinstance(length, int) else 0, accepted=True)

    @server.command(ACCEPT_COMMAND)
    def accept(ls: CopilotServer, *arguments: Any) -> None:
        if arguments:
            ls.record_event({"item": {"command": {"arguments": [arguments[0]]}}}, None, accepted=True)

    @server.command(RESTART_COMMAND)
    async def restart(ls: CopilotServer, *arguments: Any) -> None:
        if ls.engine is not None:
            await ls.engine.restart()

    @server.command(STATUS_COMMAND)
    def status(ls: CopilotServer, *arguments: Any) -> dict[str, Any]:
        return ls.status_payload()

    @server.feature(t.SHUTDOWN)
    async def shutdown(ls: CopilotServer, params: Any) -> None:
        ls.inflight.cancel_all()
        if ls.engine is not None:
            await ls.engine.close()
        ls.telemetry.close()

    return server


def section_given(settings: Any) -> bool:
    return isinstance(settings, dict) and any(k == "diffusionCopilot" or k.startswith("diffusionCopilot.")
                                              for k in settings)
