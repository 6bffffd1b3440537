"""The language server (docs/protocol.md): LSP wiring for documents, inline completions, settings, status and
telemetry. The completion flow lives in completion/inline.py, the engine connection in engine_client.py and the wire in
transport.py and protocol.py; only the lsp modules touch lsprotocol types. Nothing here writes to stdout: it
is the protocol channel.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from lsprotocol import types as t
from pygls.exceptions import FeatureRequestError
from pygls.lsp.server import LanguageServer
from pygls.workspace import TextDocument

from diffusion_copilot.engine.protocol import EngineError, EngineState, EngineStatus, ErrorCode

from ..completion.cache import CompletionCache
from ..completion.inline import CursorRequest, InlineAnswer, InlineCompleter, Source
from ..context.document_worker import Closed, DocumentWorker, Edited, Opened
from ..context.documents import LARGE_DOCUMENT_CHARS, LARGE_DOCUMENT_WINDOW_CHARS, DocumentStore, TextChange
from ..context.indexed_document import IndexedDocument, IndexedWorkspace
from ..context.positions import offset_at
from ..engine_client import EngineClient, EngineSpec
from ..settings import SECTION, Settings, section_of, updated, workspace_part
from ..telemetry import Telemetry
from .protocol import CopilotProtocol
from .transport import serve_stdio, serve_tcp

log = logging.getLogger(__name__)

STATUS_NOTIFICATION = "diffusionCopilot/status"
ACCEPT_COMMAND = "diffusionCopilot.accept"
RESTART_COMMAND = "diffusionCopilot.restartEngine"
STATUS_COMMAND = "diffusionCopilot.status"
DID_SHOW = "textDocument/didShowCompletion"
DID_PARTIALLY_ACCEPT = "textDocument/didPartiallyAcceptCompletion"
MAX_IN_FLIGHT = 8  # documents with a completion in progress; more are answered null at once
VERSION = "0.1.0"


class CopilotServer(LanguageServer):
    """The server's state: settings, the engine connection, in-flight requests, caches and telemetry."""

    def __init__(self, telemetry_path: Path | None = None) -> None:
        super().__init__("diffusion-copilot", VERSION, text_document_sync_kind=t.TextDocumentSyncKind.Incremental,
                         protocol_cls=CopilotProtocol)
        self.settings = Settings()
        self.cache = CompletionCache()
        self.documents = DocumentStore()
        self.document_worker = DocumentWorker(self.documents)  # parsing and indexing stay off the event loop
        self.completer = InlineCompleter(self.cache, self.engine_failed, self.documents,
                                         self.document_worker.wait_idle)
        self.telemetry = Telemetry(telemetry_path)
        self.engine: EngineClient | None = None
        self.requests: dict[str, asyncio.Task[Any]] = {}  # uri → the handler answering it
        self.jobs: dict[str, asyncio.Task[Any]] = {}  # uri → its completion work (cancelled on edit)
        self.completions = 0
        self.last_latency_ms: float | None = None
        self.progress_token: str | None = None  # the work-done progress shown while the engine loads
        self.progress_starting = False
        self.last_status: dict[str, Any] | None = None
        self.background: set[asyncio.Task[Any]] = set()

    def serve(self, address: tuple[str, int] | None, token: str | None) -> None:
        """Serve over stdio (`address` None) or one TCP session (after `token`, if any) until it ends."""
        protocol = self.protocol
        assert isinstance(protocol, CopilotProtocol)
        try:
            if address is None:
                serve_stdio(protocol, protocol.set_writer, self.thread_pool)
            else:
                serve_tcp(protocol, protocol.set_writer, *address, token)
        finally:
            self.shutdown()  # type: ignore[no-untyped-call]

    def report_server_error(self, error: Exception, source: Any) -> None:
        """A notification handler's failure, logged on one line (the traceback at debug level); never a popup: the
        user cannot act on a client's mistake or a server bug. A failed request is logged by pygls and carries its
        error in its answer."""
        if source is FeatureRequestError:
            return
        log.error("%s: %s", getattr(source, "__name__", source), error)
        log.debug("the failure's traceback", exc_info=error)

    def spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        """Run `work` in the background, keeping a reference until it ends."""
        task = asyncio.get_running_loop().create_task(work)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    # engine and status

    def use_engine(self) -> None:
        """Connect to (or start) the engine the settings name, if it is not the current one."""
        s = self.settings
        model = str(Path(s.model).expanduser().resolve()) if s.model and Path(s.model).expanduser().exists() \
            else s.model
        spec = EngineSpec(model=model, device=s.device, dtype=s.dtype, command=s.engine_command,
                          backend=s.backend, vllm_urls=s.vllm_urls if s.backend == "vllm" else (),
                          vllm_token_env=s.vllm_token_env)
        if self.engine is not None and self.engine.spec == spec:
            return
        if self.engine is not None:
            self.spawn(self.engine.close())
        self.cache.clear()
        self.engine = EngineClient(spec, on_status=self.engine_status_changed)
        self.spawn(self.engine.connect())

    def engine_status_changed(self, status: EngineStatus) -> None:
        if status.state is not EngineState.LOADING:
            self.end_progress(status.message)  # before the status, so clients see the progress end first
        self.notify_status()
        if status.state is EngineState.LOADING and self.progress_token is None and not self.progress_starting:
            self.progress_starting = True
            self.spawn(self.begin_progress(status.message))

    async def begin_progress(self, message: str) -> None:
        """Show work-done progress while the engine loads, where the client supports it."""
        try:
            window = self.client_capabilities.window
            if window is None or not window.work_done_progress:
                return
            token = f"diffusionCopilot/loading/{time.monotonic_ns()}"
            await self.work_done_progress.create_async(token)
            self.work_done_progress.begin(token, t.WorkDoneProgressBegin(
                title="Diffusion Copilot: loading model", message=message, cancellable=False))
            self.progress_token = token
        except Exception as err:  # a client that refuses progress still gets the status notification
            log.info("work done progress refused: %s", err)
            return
        finally:
            self.progress_starting = False
        if self.engine is not None and self.engine.status.state is not EngineState.LOADING:
            self.end_progress(self.engine.status.message)

    def end_progress(self, message: str) -> None:
        if self.progress_token is not None:
            token, self.progress_token = self.progress_token, None
            self.work_done_progress.end(token, t.WorkDoneProgressEnd(message=message))

    def status_payload(self) -> dict[str, Any]:
        status = self.engine.status if self.engine else EngineStatus(EngineState.LOADING, "starting")
        return {"state": status.state.value, "message": status.message, "model": status.model,
                "hasRandomWeights": status.has_random_weights, "kernels": status.kernels,
                "lastLatencyMs": self.last_latency_ms}

    def notify_status(self) -> None:
        payload = self.status_payload()
        if payload != self.last_status:
            self.last_status = payload
            self.protocol.notify(STATUS_NOTIFICATION, payload)

    def engine_failed(self, error: EngineError) -> None:
        if error.code not in (ErrorCode.CANCELLED, ErrorCode.QUEUE_FULL):
            log.warning("engine: %s: %s", error.code, error.message)

    # settings

    def apply_settings(self, raw: Any, *, is_from_workspace: bool) -> None:
        """Apply the `diffusionCopilot` section of `raw`; warn about bad values, which keep their old value.
        Workspace settings (configuration answers, pushes) cannot change the machine keys."""
        section = section_of(raw)
        if section is None:
            return
        refused: str | None = None
        if is_from_workspace:
            section, refused = workspace_part(self.settings, section)
        self.settings, warnings = updated(self.settings, section)
        if refused is not None:
            log.warning("%s", refused)
            warnings = (refused, *warnings)
        if warnings:
            self.window_show_message(t.ShowMessageParams(t.MessageType.Warning,
                                                         "Diffusion Copilot: " + "; ".join(warnings)))
        self.use_engine()

    async def pull_settings(self) -> None:
        workspace = self.client_capabilities.workspace
        if workspace is None or not workspace.configuration:
            return
        try:
            results = await self.workspace_configuration_async(
                t.ConfigurationParams(items=[t.ConfigurationItem(section=SECTION)]))
        except Exception as err:
            log.warning("workspace/configuration failed: %s", err)
            return
        if results and isinstance(results[0], dict):
            self.apply_settings({SECTION: results[0]}, is_from_workspace=True)

    # completion

    def document(self, uri: str) -> TextDocument | None:
        doc: TextDocument | None = self.workspace.text_documents.get(unquote(uri))
        return doc

    def use_indexed_documents(self) -> None:
        """Keep documents as `IndexedDocument`s (an edit costs the lines it touches); called at initialize, once
        pygls has made the workspace and before any document is opened."""
        self.protocol._workspace = IndexedWorkspace.like(self.workspace)

    def cursor_request(self, doc: TextDocument, params: t.InlineCompletionParams) -> CursorRequest | None:
        """The plain request for `params`, or None when the position lies outside the document."""
        is_large = isinstance(doc, IndexedDocument) and doc.length > LARGE_DOCUMENT_CHARS  # the text is not joined
        text, encoding = "" if is_large else doc.source, position_encoding(self.workspace.position_encoding)

        def offset(position: t.Position) -> int | None:
            if isinstance(doc, IndexedDocument):
                return doc.offset_at(position.line, position.character)
            return offset_at(text, position.line, position.character, encoding)

        cursor = offset(params.position)
        if cursor is None:
            return None
        before, lead, after = cursor, "", cursor  # prefix: text[:before] + lead; suffix: text[after:]
        selected = params.context.selected_completion_info
        if selected is not None:
            start, end = offset(selected.range.start), offset(selected.range.end)
            if start is not None and end is not None and start <= end and selected.range.start.line == \
                    selected.range.end.line:
                before, lead, after = start, selected.text, max(end, cursor)
        if isinstance(doc, IndexedDocument) and is_large:  # its context is this window anyway
            prefix, suffix = doc.window(before, lead, after, LARGE_DOCUMENT_WINDOW_CHARS)
        else:
            prefix, suffix = text[:before] + lead, text[after:]
        invoked = params.context.trigger_kind == t.InlineCompletionTriggerKind.Invoked
        return CursorRequest(uri=doc.uri, path=self.document_path(doc), language=doc.language_id or "plaintext",
                             prefix=prefix, suffix=suffix, cursor_offset=before + len(lead), invoked=invoked)

    async def inline_completion(self, params: t.InlineCompletionParams, received: float
                                ) -> t.InlineCompletionList | None:
        """The answer to one request, which arrived at perf_counter `received`."""
        uri = params.text_document.uri
        doc = self.document(uri)
        if doc is None or not self.settings.is_enabled_for(doc.language_id or "plaintext") or self.engine is None:
            return None
        request = self.cursor_request(doc, params)
        if request is None:
            return None
        answer = self.completer.from_cache(request, self.settings)
        if answer is None:
            answer = await self.completion_from_engine(uri, doc, request)
        if answer is None:
            return None
        return self.items(params, request, answer, received)

    async def completion_from_engine(self, uri: str, doc: TextDocument, request: CursorRequest
                                     ) -> InlineAnswer | None:
        """Ask the engine, cancelling this document's older request; None when the document changed first."""
        assert self.engine is not None
        older = self.requests.get(uri)
        if older is not None and not older.done():
            older.cancel()  # it answers -32800
        if len(self.requests) >= MAX_IN_FLIGHT and uri not in self.requests:
            return None
        me = asyncio.current_task()
        assert me is not None
        version = doc.version
        job = asyncio.get_running_loop().create_task(self.completer.complete(
            request, self.settings, self.engine, lambda: doc.version == version and self.document(uri) is doc))
        self.requests[uri], self.jobs[uri] = me, job
        try:
            return await job
        except asyncio.CancelledError:
            if job.cancelled() and me.cancelling() == 0:
                return None  # the document changed: no answer for a stale version
            raise
        finally:
            if self.requests.get(uri) is me:
                del self.requests[uri], self.jobs[uri]

    def items(self, params: t.InlineCompletionParams, request: CursorRequest, answer: InlineAnswer,
              received: float) -> t.InlineCompletionList:
        self.completions += 1
        completion_id = self.telemetry.new_id()
        selected = params.context.selected_completion_info
        cursor = t.Range(start=params.position, end=params.position)
        edit_range, lead = (selected.range, selected.text) if selected is not None else (cursor, "")
        items = [
            t.InlineCompletionItem(insert_text=lead + text, range=edit_range, command=t.Command(
                title="Accept", command=ACCEPT_COMMAND, arguments=[f"{completion_id}.{index}"]))
            for index, text in enumerate(answer.texts)
        ]
        now = time.perf_counter()
        latency_ms = (now - received) * 1000
        trigger = "invoked" if request.invoked else "automatic"
        if self.settings.telemetry:
            self.telemetry.answered(completion_id, trigger, request.language, answer.source.value, len(items),
                                    latency_ms)
        if answer.source is Source.ENGINE:
            self.last_latency_ms = round(latency_ms, 1)
            self.notify_status()
        if answer.engine_sent_s is not None and answer.engine_done_s is not None:
            log.info("timing %s %s source=%s items=%d total_ms=%.3f before_engine_ms=%.3f engine_ms=%.3f "
                     "after_engine_ms=%.3f", completion_id, trigger, answer.source.value, len(items), latency_ms,
                     (answer.engine_sent_s - received) * 1000, (answer.engine_done_s - answer.engine_sent_s) * 1000,
                     (now - answer.engine_done_s) * 1000)
        else:
            log.info("timing %s %s source=%s items=%d total_ms=%.3f", completion_id, trigger, answer.source.value,
                     len(items), latency_ms)
        return t.InlineCompletionList(items=items)

    def document_opened(self, uri: str) -> None:
        doc = self.document(uri)
        if doc is not None:
            self.document_worker.submit(Opened(doc.uri, self.document_path(doc), doc.language_id or "plaintext",
                                               doc.source))

    def document_changed(self, uri: str, changes: list[TextChange] | None = None) -> None:
        job = self.jobs.get(unquote(uri)) or self.jobs.get(uri)
        if job is not None and not job.done():
            job.cancel()
        doc = self.document(uri)
        if doc is not None and changes is not None:
            is_large = isinstance(doc, IndexedDocument) and doc.length > LARGE_DOCUMENT_CHARS  # not joined each time
            self.document_worker.submit(Edited(doc.uri, tuple(changes), position_encoding(
                self.workspace.position_encoding), None if is_large else doc.source))

    def document_closed(self, uri: str) -> None:
        self.document_changed(uri)
        self.cache.forget(uri)
        self.document_worker.submit(Closed(unquote(uri)))
        self.document_worker.submit(Closed(uri))

    def index_workspace(self) -> None:
        """Index the first workspace folder's files for cross-file context, in the background."""
        root = self.workspace.root_path
        if root and Path(root).is_dir():
            self.documents.index_workspace(Path(root))

    @staticmethod
    def document_path(doc: TextDocument) -> str:
        return unquote(urlparse(doc.uri).path) if doc.uri.startswith("file:") else doc.uri

    def record_event(self, params: Any, accepted_chars: int | None, accepted: bool) -> None:
        """Record a show or partial-accept notification; the item's command names the completion."""
        try:
            item = params.item if hasattr(params, "item") else params["item"]
            command = item.command if hasattr(item, "command") else item["command"]
            arguments = command.arguments if hasattr(command, "arguments") else command["arguments"]
            completion_id = str(arguments[0]).split(".")[0]
        except (KeyError, TypeError, IndexError, AttributeError):
            log.info("telemetry notification without a completion id: %r", params)
            return
        if self.settings.telemetry:
            if accepted:
                self.telemetry.accepted(completion_id, accepted_chars)
            else:
                self.telemetry.shown(completion_id)


def position_encoding(kind: t.PositionEncodingKind | str | None) -> str:
    """The negotiated encoding as its protocol name (`utf-16` when none was negotiated)."""
    if isinstance(kind, t.PositionEncodingKind):
        return str(kind.value)
    return kind or "utf-16"
