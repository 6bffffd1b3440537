"""The completions in progress, one per document: debounce (automatic requests wait for typing to settle),
latest wins (a newer request for a document cancels the older one, which answers -32800), cancel on edit (an edit
cancels the document's completion work, whose request then answers null), and a cap on busy documents. Owns the
tasks; knows nothing of LSP types or of how an answer is made.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar
from urllib.parse import unquote

from ..completion.inline import CursorRequest
from ..settings import Settings

MAX_IN_FLIGHT = 8  # documents with a completion in progress; more are answered null at once
T = TypeVar("T")


async def debounce(request: CursorRequest, settings: Settings) -> None:
    """Wait `debounce_ms` before an automatic request reaches the engine; a newer keystroke cancels the waiting task
    here (latest wins)."""
    if not request.invoked and settings.debounce_ms:
        await asyncio.sleep(settings.debounce_ms / 1000)


class InFlight:
    """For each document, the request being answered and its completion work."""

    def __init__(self, max_documents: int = MAX_IN_FLIGHT) -> None:
        self.max_documents = max_documents
        self.requests: dict[str, asyncio.Task[Any]] = {}  # uri → the handler answering it
        self.jobs: dict[str, asyncio.Task[Any]] = {}  # uri → its completion work (cancelled on edit)

    async def latest(self, uri: str, work: Callable[[], Coroutine[Any, Any, T | None]]) -> T | None:
        """Run `work()` as the document's completion work, for the calling request, cancelling the document's
        older request; None when too many other documents are busy, or when an edit cancelled the work."""
        older = self.requests.get(uri)
        if older is not None and not older.done():
            older.cancel()  # it answers -32800
        if len(self.requests) >= self.max_documents and uri not in self.requests:
            return None
        me = asyncio.current_task()
        assert me is not None
        job = asyncio.get_running_loop().create_task(work())
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

    def edited(self, uri: str) -> None:
        """Cancel the completion work of a document that changed (or closed)."""
        job = self.jobs.get(unquote(uri)) or self.jobs.get(uri)
        if job is not None and not job.done():
            job.cancel()

    def cancel_all(self) -> None:
        """Cancel every request and its work (the server is shutting down)."""
        for task in list(self.requests.values()) + list(self.jobs.values()):
            task.cancel()
