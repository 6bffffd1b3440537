"""Next-edit suggestions over LSP, in Copilot's wire format: the `textDocument/copilotInlineEdit` request (params
`{textDocument: {uri, version}, position}`, result `{edits: [{text, range, textDocument, command}]}`) and the
`textDocument/didShowInlineEdit` notification (`{item: {command: {arguments: [id]}}}`), so existing next-edit
clients work unchanged; answers, shows and accepts go to telemetry as completions do (trigger `edit`). Only wiring
and conversion here; the flow is completion/next_edit.py.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from ..completion.edits import TextEdit
from ..completion.next_edit import EditHistory, EditRequest, NextEditor
from ..context.paths import shown_path
from ..context.positions import offset_at, units_between
from .convert import document_path, workspace_roots

if TYPE_CHECKING:
    from .server import CopilotServer

log = logging.getLogger(__name__)

INLINE_EDIT = "textDocument/copilotInlineEdit"
DID_SHOW_INLINE_EDIT = "textDocument/didShowInlineEdit"
ACCEPT_EDIT_COMMAND = "diffusionCopilot.acceptInlineEdit"
EXPERIMENTAL = {"diffusionCopilot": {"inlineEdit": {"method": INLINE_EDIT, "didShow": DID_SHOW_INLINE_EDIT}}}


class NextEditFeature:
    """The server's next-edit state: each document's recent edit, the flow with its cache, and the request in
    flight per document (a newer request or an edit cancels it, as for inline completions)."""

    def __init__(self, server: CopilotServer) -> None:
        self.server = server
        self.history = EditHistory()
        self.editor = NextEditor(server.engine_failed)
        self.tasks: dict[str, asyncio.Task[Any]] = {}  # uri → its engine work

    def document_opened(self, uri: str) -> None:
        doc = self.server.document(uri)
        if doc is not None:
            self.history.opened(doc.uri, doc.source)

    def document_changed(self, uri: str) -> None:
        task = self.tasks.get(uri)
        if task is not None and not task.done():
            task.cancel()

    async def inline_edit(self, params: Any) -> dict[str, Any]:
        """The answer to one `textDocument/copilotInlineEdit` request: `{"edits": [...]}`, empty for no suggestion."""
        server = self.server
        received = time.perf_counter()
        uri, position = str(field(field(params, "textDocument"), "uri")), field(params, "position")
        doc = server.document(uri)
        settings = server.settings
        if (doc is None or server.engine is None or not settings.next_edit_enabled
                or not settings.is_enabled_for(doc.language_id or "plaintext")):
            return {"edits": []}
        text, encoding = doc.source, encoding_of(server)
        cursor = offset_at(text, int(field(position, "line")), int(field(position, "character")), encoding)
        if cursor is None:
            return {"edits": []}
        path = document_path(doc)
        request = EditRequest(uri=doc.uri, path=path, language=doc.language_id or "plaintext", text=text,
                              cursor_offset=cursor, recent_diff=self.history.recent_diff(doc.uri, text),
                              invoked=is_invoked(params),
                              shown_path=shown_path(path, workspace_roots(server.workspace)))
        older = self.tasks.get(doc.uri)
        if older is not None and not older.done():
            older.cancel()
        version = doc.version
        task = asyncio.get_running_loop().create_task(self.editor.suggest(
            request, server.settings, server.engine,
            lambda: doc.version == version and server.document(uri) is doc))
        self.tasks[doc.uri] = task
        try:
            answer = await task
        except asyncio.CancelledError:
            if task.cancelled() and (me := asyncio.current_task()) is not None and me.cancelling() == 0:
                return {"edits": []}  # the document changed: nothing for a stale version
            raise
        finally:
            if self.tasks.get(doc.uri) is task:
                del self.tasks[doc.uri]
        if answer is None:
            return {"edits": []}
        edit_id = server.telemetry.new_id()
        if server.settings.telemetry:
            server.telemetry.answered(edit_id, "edit", request.language, answer.source.value, len(answer.edits),
                                      (time.perf_counter() - received) * 1000)
        return {"edits": [wire_edit(edit, text, encoding, doc.uri, version, f"{edit_id}.{index}")
                          for index, edit in enumerate(answer.edits)]}

    def did_show(self, params: Any) -> None:
        log.info("inline edit shown: %r", field(field(field(params, "item"), "command"), "arguments"))
        self.server.record_event(params, None, accepted=False)

    def accepted(self, arguments: tuple[Any, ...]) -> None:
        log.info("inline edit accepted: %r", arguments[:1])
        if arguments:
            self.server.record_event({"item": {"command": {"arguments": [arguments[0]]}}}, None, accepted=True)


def register_next_edit(server: CopilotServer) -> NextEditFeature:
    """Register the next-edit request, notification and accept command on `server`; the feature, whose
    `document_opened` and `document_changed` the document handlers call."""
    feature = NextEditFeature(server)

    @server.feature(INLINE_EDIT)
    async def inline_edit(ls: CopilotServer, params: Any) -> dict[str, Any]:
        return await feature.inline_edit(params)

    @server.feature(DID_SHOW_INLINE_EDIT)
    def did_show(ls: CopilotServer, params: Any) -> None:
        feature.did_show(params)

    @server.command(ACCEPT_EDIT_COMMAND)
    def accept(ls: Any, *arguments: Any) -> None:  # pygls reads a command's hints at run time: no TYPE_CHECKING name
        feature.accepted(arguments)

    return feature


def wire_edit(edit: TextEdit, text: str, encoding: str, uri: str, version: int | None, edit_id: str
              ) -> dict[str, Any]:
    """One edit in Copilot's shape, its range in the negotiated position encoding."""
    return {
        "text": edit.text,
        "range": {"start": lsp_position(text, edit.start, encoding), "end": lsp_position(text, edit.end, encoding)},
        "textDocument": {"uri": uri, "version": version},
        "command": {"title": "Accept next edit", "command": ACCEPT_EDIT_COMMAND, "arguments": [edit_id]},
    }


def lsp_position(text: str, offset: int, encoding: str) -> dict[str, int]:
    """The {line, character} of a string index, `character` in the negotiated encoding's code units."""
    line_start = text.rfind("\n", 0, offset) + 1
    return {"line": text.count("\n", 0, offset), "character": units_between(text, line_start, offset, encoding)}


def encoding_of(server: CopilotServer) -> str:
    kind = server.workspace.position_encoding
    return str(getattr(kind, "value", kind) or "utf-16")


def is_invoked(params: Any) -> bool:
    """Whether the client asked explicitly: Copilot's params say nothing (an edit pause, debounced); ours may carry
    `context.triggerKind` 1 (Invoked) as inline completions do."""
    return bool(field(field(params, "context"), "triggerKind") == 1)


def field(value: Any, name: str) -> Any:
    """A field of params that pygls typed (attributes) or left as JSON (a dict); None when absent."""
    if isinstance(value, dict):
        return value.get(name)
    return getattr(value, name, None)
