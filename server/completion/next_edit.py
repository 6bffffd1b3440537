"""The next-edit flow, shared by the language server and the HTTP API: a document, a cursor and the recent edit in,
minimal edits out (usually none). Answers from its cache when it can, skips the engine when there is no recent edit,
otherwise runs an edit job on the window around the cursor. No LSP or HTTP types here, no blocking calls.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from diffusion_copilot.engine import PromptParts
from diffusion_copilot.engine.prompt.edit import (
    EDIT_CANVAS_TOKENS,
    RENOISE,
    EditWindow,
    Window,
    compact_diff,
    edit_window,
    window_chars,
)
from diffusion_copilot.engine.protocol import EngineError, EngineState, RunReply, RunRequest

from ..context.paths import shown_path
from ..engine_client import EngineClient
from ..settings import Settings
from .edits import TextEdit, accepted_edits, minimal_edits, rewritten_window
from .inline import PREFIX_CHARS, SUFFIX_CHARS, Source


@dataclass(frozen=True)
class EditRequest:
    """A next-edit request in plain data: the whole document, the cursor (a string index) and the recent edit."""

    uri: str
    path: str
    language: str
    text: str
    cursor_offset: int
    recent_diff: str  # the recent edits as a compact diff ("" for none)
    invoked: bool = False
    shown_path: str = ""  # the file's path as the prompt shows it (workspace-relative); "": context.paths' rule


@dataclass(frozen=True)
class EditAnswer:
    """The edits to suggest (() for none), where they came from, and the engine's share of the time."""

    edits: tuple[TextEdit, ...]
    source: Source
    engine_ms: float | None = None


class EditHistory:
    """Per document, the text at the last edit pause and the change that led to it: the recent edit a next-edit
    request is about. Owned by whoever takes requests (the language server's next-edit feature)."""

    def __init__(self, max_documents: int = 64) -> None:
        self.max_documents = max_documents
        self.texts: OrderedDict[str, tuple[str, str]] = OrderedDict()  # uri → (text, diff that led to it)

    def opened(self, uri: str, text: str) -> None:
        self._keep(uri, text, "")

    def recent_diff(self, uri: str, text: str) -> str:
        """The change since the previous pause (the last one again while the text has not changed since)."""
        before = self.texts.get(uri)
        if before is None:
            self._keep(uri, text, "")
            return ""
        if before[0] == text:
            return before[1]
        diff: str = compact_diff(before[0], text)
        self._keep(uri, text, diff)
        return diff

    def forget(self, uri: str) -> None:
        self.texts.pop(uri, None)

    def _keep(self, uri: str, text: str, diff: str) -> None:
        self.texts[uri] = (text, diff)
        self.texts.move_to_end(uri)
        while len(self.texts) > self.max_documents:
            self.texts.popitem(last=False)


def edit_run_request(request: EditRequest, window: Window, settings: Settings) -> RunRequest:
    """The engine's edit job for `request`: the text around the window as the prompt, the window as the canvas."""
    text = request.text
    prompt = PromptParts(path=request.shown_path or shown_path(request.path), language=request.language,
                         prefix=text[:window.start][-PREFIX_CHARS:],
                         suffix=text[window.end:][:SUFFIX_CHARS])
    return RunRequest(prompt=prompt, canvas_length=EDIT_CANVAS_TOKENS, max_steps=settings.max_steps,
                      time_budget_s=None if request.invoked else settings.latency_budget_ms / 1000,
                      seed=settings.seed, edit=EditWindow(text[window.start:window.end], request.recent_diff, RENOISE))


def suggested_edits(request: EditRequest, window: Window, reply: RunReply, min_confidence: float
                    ) -> tuple[TextEdit, ...]:
    """The edits an edit job's reply suggests after the gates (`edits.accepted_edits`), () for none."""
    if not reply.canvases:
        return ()
    canvas = reply.canvases[0]
    if canvas.completion is None:  # it did not re-create the pinned characters: not a rewrite of the window
        return ()
    old = request.text[window.start:window.end]
    new = rewritten_window(canvas.completion)
    edits = minimal_edits(old, new, window.start)
    confidence = sum(canvas.confidence) / len(canvas.confidence) if canvas.confidence else 0.0
    return accepted_edits(edits, request.text, window, request.recent_diff, confidence, min_confidence)


def min_confidence(settings: Settings, has_random_weights: bool | None) -> float:
    """The confidence gate of suggested edits: the setting, or none for random weights (whose rewrites are noise)."""
    return 0.0 if has_random_weights else settings.next_edit_min_confidence


def cache_key(request: EditRequest, window: Window, settings: Settings) -> str:
    parts = (request.path, request.language, request.text[window.start:window.end], request.recent_diff,
             str(window.start), settings.model or "", str(settings.max_steps), str(settings.seed),
             str(settings.next_edit_min_confidence))
    return hashlib.sha256("\0".join(parts).encode("utf-8", "replace")).hexdigest()


class NextEditor:
    """Turns edit requests into answers, with a small LRU in front of the engine."""

    def __init__(self, on_engine_error: Callable[[EngineError], None], max_entries: int = 128) -> None:
        self.on_engine_error = on_engine_error
        self.max_entries = max_entries
        self.cache: OrderedDict[str, tuple[TextEdit, ...]] = OrderedDict()

    async def suggest(self, request: EditRequest, settings: Settings, client: EngineClient,
                      is_current: Callable[[], bool]) -> EditAnswer | None:
        """The edits for `request` (often none), or None when the engine is not ready or the document went stale.
        Cancelling the awaiting task cancels the engine job."""
        if not request.recent_diff.strip():
            return EditAnswer((), Source.CACHE)  # nothing was edited: nothing follows from it
        window = edit_window(request.text, request.cursor_offset,
                             window_chars(EDIT_CANVAS_TOKENS, client.status.chars_per_token))
        key = cache_key(request, window, settings)
        if key in self.cache:
            self.cache.move_to_end(key)
            return EditAnswer(self.cache[key], Source.CACHE)
        if not client.is_connected:
            client.ensure_connecting()
            return None
        if client.status.state in (EngineState.LOADING, EngineState.ERROR):
            return None
        if not request.invoked and settings.next_edit_debounce_ms:
            await asyncio.sleep(settings.next_edit_debounce_ms / 1000)  # a newer edit cancels this task here
        if not is_current():
            return None
        sent = time.perf_counter()
        reply = await client.run(edit_run_request(request, window, settings))
        engine_ms = (time.perf_counter() - sent) * 1000
        if isinstance(reply, EngineError):
            self.on_engine_error(reply)
            return None
        if not is_current():
            return None
        edits = suggested_edits(request, window, reply, min_confidence(settings, client.status.has_random_weights))
        self.cache[key] = edits
        while len(self.cache) > self.max_entries:
            self.cache.popitem(last=False)
        return EditAnswer(edits, Source.ENGINE, engine_ms)
