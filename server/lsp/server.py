"""The language server's state (docs/protocol.md): settings, the engine's lifecycle and status, the documents, the
completion cache and telemetry, and the flow of one inline completion. Handlers (handlers.py) only call it;
in-flight control is inflight.py's, LSP conversion convert.py's, the loading progress progress.py's; the completion
pipeline lives in completion/, the engine connection in engine_client/ and the wire in transport.py and
protocol.py. Nothing here writes to stdout: it is the protocol channel.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from lsprotocol import types as t
from pygls.exceptions import FeatureRequestError
from pygls.lsp.server import LanguageServer
from pygls.workspace import TextDocument

from diffusion_copilot.engine.protocol import EngineError, EngineState, EngineStatus, ErrorCode

from ..completion.cache import CompletionCache
from ..completion.inline import CursorRequest, InlineAnswer, InlineCompleter, Source
from ..context.document_worker import Closed, DocumentWorker, Edited, Opened
from ..context.documents import DocumentStore, TextChange
from ..context.indexed_document import IndexedWorkspace
from ..engine_client import EngineClient, EngineSpec
from ..settings import SECTION, Settings, section_of, updated, workspace_part
from ..telemetry import Telemetry
from .convert import (
    completion_id_of,
    completion_list,
    cursor_request,
    document_path,
    is_large,
    position_encoding,
    status_payload,
    workspace_roots,
)
from .inflight import InFlight, debounce
from .progress import LoadingProgress
from .protocol import CopilotProtocol
from .transport import serve_stdio, serve_tcp

log = logging.getLogger(__name__)

STATUS_NOTIFICATION = "diffusionCopilot/status"
VERSION = "0.1.0"


class CopilotServer(LanguageServer):
    """The server's state: settings, the engine connection, documents, in-flight completions, caches and
    telemetry."""

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
        self.inflight = InFlight()
        self.completions = 0
        self.last_latency_ms: float | None = None
        self.loading_progress = LoadingProgress(self, self.spawn, lambda: self.engine.status if self.engine else None)
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
            self.loading_progress.end(status.message)  # before the status, so clients see the progress end first
        self.notify_status()
        if status.state is EngineState.LOADING:
            self.loading_progress.begin(status.message)

    def status_payload(self) -> dict[str, Any]:
        status = self.engine.status if self.engine else EngineStatus(EngineState.LOADING, "starting")
        return status_payload(status, self.last_latency_ms)

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

    async def inline_completion(self, params: t.InlineCompletionParams, received: float
                                ) -> t.InlineCompletionList | None:
        """The answer to one request, which arrived at perf_counter `received`."""
        uri = params.text_document.uri
        doc = self.document(uri)
        if doc is None or not self.settings.is_enabled_for(doc.language_id or "plaintext") or self.engine is None:
            return None
        request = cursor_request(
            doc, params, position_encoding(self.workspace.position_encoding), workspace_roots(self.workspace)
        )
        if request is None:
            return None
        answer = self.completer.from_cache(request, self.settings)
        if answer is None:
            answer = await self.completion_from_engine(uri, doc, request)
        if answer is None:
            return None
        completion_id = self.telemetry.new_id()
        items = completion_list(params, answer, completion_id)
        self.answered(completion_id, request, answer, len(items.items), received)
        return items

    async def completion_from_engine(self, uri: str, doc: TextDocument, request: CursorRequest
                                     ) -> InlineAnswer | None:
        """Ask the engine, cancelling this document's older request; None when the document changed first."""
        assert self.engine is not None
        engine, version = self.engine, doc.version

        def is_current() -> bool:
            return doc.version == version and self.document(uri) is doc

        return await self.inflight.latest(
            uri, lambda: self.completer.complete(request, self.settings, engine, is_current, debounce))

    def answered(self, completion_id: str, request: CursorRequest, answer: InlineAnswer, items: int,
                 received: float) -> None:
        """Record an answer of `items` items: telemetry, the latency the status shows, a timing log line."""
        self.completions += 1
        now = time.perf_counter()
        latency_ms = (now - received) * 1000
        trigger = "invoked" if request.invoked else "automatic"
        if self.settings.telemetry:
            self.telemetry.answered(completion_id, trigger, request.language, answer.source.value, items,
                                    latency_ms)
        if answer.source is Source.ENGINE:
            self.last_latency_ms = round(latency_ms, 1)
            self.notify_status()
        if answer.engine_sent_s is not None and answer.engine_done_s is not None:
            log.info("timing %s %s source=%s items=%d total_ms=%.3f before_engine_ms=%.3f engine_ms=%.3f "
                     "after_engine_ms=%.3f", completion_id, trigger, answer.source.value, items, latency_ms,
                     (answer.engine_sent_s - received) * 1000, (answer.engine_done_s - answer.engine_sent_s) * 1000,
                     (now - answer.engine_done_s) * 1000)
        else:
            log.info("timing %s %s source=%s items=%d total_ms=%.3f", completion_id, trigger, answer.source.value,
                     items, latency_ms)

    def document_opened(self, uri: str) -> None:
        doc = self.document(uri)
        if doc is not None:
            self.document_worker.submit(Opened(doc.uri, document_path(doc), doc.language_id or "plaintext",
                                               doc.source))

    def document_changed(self, uri: str, changes: list[TextChange] | None = None) -> None:
        self.inflight.edited(uri)
        doc = self.document(uri)
        if doc is not None and changes is not None:
            self.document_worker.submit(Edited(doc.uri, tuple(changes), position_encoding(
                self.workspace.position_encoding), None if is_large(doc) else doc.source))  # a large one: not joined

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

    def record_event(self, params: Any, accepted_chars: int | None, accepted: bool) -> None:
        """Record a show or partial-accept notification; the item's command names the completion."""
        completion_id = completion_id_of(params)
        if completion_id is None:
            log.info("telemetry notification without a completion id: %r", params)
            return
        if self.settings.telemetry:
            if accepted:
                self.telemetry.accepted(completion_id, accepted_chars)
            else:
                self.telemetry.shown(completion_id)
