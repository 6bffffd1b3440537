"""The thread that keeps the document store in step with the editor: opens, edits and closes are queued by the
event loop (which must never parse or index) and applied here in the order they came. Edits of one document that
queued up while the thread was busy are applied together, so the re-parse and re-index run once for the latest
text.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass

from .documents import DocumentStore, TextChange

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Opened:
    """A didOpen: the document's whole text."""

    uri: str
    path: str
    language: str
    text: str


@dataclass(frozen=True)
class Edited:
    """A didChange (or several in a row, merged)."""

    uri: str
    changes: tuple[TextChange, ...]
    encoding: str
    final_text: str | None  # the text after the changes, to re-parse when an edit does not fit (None: large)

    def then(self, later: Edited) -> Edited:
        return Edited(self.uri, self.changes + later.changes, later.encoding, later.final_text)


@dataclass(frozen=True)
class Closed:
    """A didClose."""

    uri: str


@dataclass(frozen=True)
class Reached:
    """Sets `event` once everything queued before it was applied."""

    event: threading.Event


Work = Opened | Edited | Closed | Reached


class DocumentWorker:
    """Applies queued document work to a `DocumentStore` on one daemon thread, in order."""

    def __init__(self, store: DocumentStore) -> None:
        self.store = store
        self._queue: queue.Queue[Work] = queue.Queue()
        self._thread: threading.Thread | None = None

    def submit(self, work: Work) -> None:
        """Queue `work`; it returns at once."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="document-worker", daemon=True)
            self._thread.start()
        self._queue.put(work)

    def wait_idle(self, timeout_s: float) -> bool:
        """Whether all queued work was applied within `timeout_s` (for tests and benchmarks)."""
        reached = Reached(threading.Event())
        self.submit(reached)
        return reached.event.wait(timeout_s)

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            while not self._queue.empty():
                batch.append(self._queue.get_nowait())
            for work in coalesced(batch):
                try:
                    self._apply(work)
                except Exception:  # a bug here must not stop the thread: the next open parses afresh
                    log.exception("document worker failed on %s of %s", type(work).__name__, getattr(work, "uri", ""))

    def _apply(self, work: Work) -> None:
        began = time.perf_counter()
        if isinstance(work, Reached):
            work.event.set()
            return
        if isinstance(work, Opened):
            self.store.open(work.uri, work.path, work.language, work.text)
        elif isinstance(work, Edited):
            self.store.change(work.uri, work.changes, work.encoding, work.final_text)
        else:
            self.store.close(work.uri)
        log.info("document worker: %s %s (%d changes) in %.1f ms", type(work).__name__.lower(), work.uri,
                  len(work.changes) if isinstance(work, Edited) else 0, (time.perf_counter() - began) * 1000)


def coalesced(batch: list[Work]) -> list[Work]:
    """The batch with each run of edits to one document merged into one (applied in order, parsed once)."""
    merged: list[Work] = []
    for work in batch:
        last = merged[-1] if merged else None
        if isinstance(work, Edited) and isinstance(last, Edited) and last.uri == work.uri:
            merged[-1] = last.then(work)
        else:
            merged.append(work)
    return merged
