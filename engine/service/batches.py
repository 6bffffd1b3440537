"""Running a batch of queued `run` requests on the backend (worker thread) and answering each request on the
event loop as soon as its own job is done."""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Callable
from typing import Any

from ..backends import Backend
from ..backends.local.denoise import StepControl
from ..job import FinishReason, JobResult
from ..prompt.detokenize import Decode, before_eos
from ..protocol import (
    ErrorCode,
    RequestError,
    RunRequest,
    error_message,
    rows_of,
    run_reply_of,
    run_request,
    run_result,
)
from .connections import Queued

log = logging.getLogger(__name__)


def take(jobs: queue.Queue[Queued | None], limit: int) -> tuple[list[Queued], bool]:
    """The next queued request, and with it every other one waiting, up to the engine's batch rows (one
    request when the engine does not batch: `limit` 1); True once the queue says stop."""
    item = jobs.get()
    if item is None:
        return [], True
    batch = [item]
    rows = rows_of(item.params)
    while rows < limit:
        try:
            more = jobs.get_nowait()
        except queue.Empty:
            break
        if more is None:
            return batch, True
        batch.append(more)
        rows += rows_of(more.params)
    return batch, False


class Batches:
    """Runs batches on `engine` (None: it failed to load, and `load_error()` says why); `to_loop` calls a function
    on the event loop, where replies are written."""

    def __init__(self, engine: Backend | None, to_loop: Callable[..., None], load_error: Callable[[], str]) -> None:
        self.engine = engine
        self.to_loop = to_loop
        self.load_error = load_error

    def run(self, batch: list[Queued]) -> None:
        """Complete the requests of `batch` together and answer each on its own; an engine bug answers them with
        its error."""
        if not batch:
            return
        engine = self.engine
        if engine is None:
            for item in batch:
                self.reply_error(item, ErrorCode.LOAD_FAILED, self.load_error())
            return
        runnable: list[tuple[Queued, RunRequest]] = []
        for item in batch:
            if item.cancel.is_set():
                self.reply_error(item, ErrorCode.CANCELLED, "cancelled before it started")
                continue
            try:
                runnable.append((item, run_request(item.params)))
            except RequestError as err:
                self.reply_error(item, err.code, str(err))
        if not runnable:
            return
        answered: set[int] = set()  # id() of the requests answered while the batch runs (done or cancelled)
        started = time.perf_counter()
        controls = [self.control(item, request, engine, answered, started) for item, request in runnable]
        try:
            results = engine.complete_batch(
                [request.prompt for _, request in runnable],
                [request.job for _, request in runnable],
                controls,
                pin_healed=[request.pin_healed for _, request in runnable],
                edits=[request.edit for _, request in runnable],
            )
        except Exception as err:  # an engine bug answers these requests and keeps the worker alive
            log.exception("jobs failed")
            error = JobResult(finish_reason=FinishReason.ERROR, error=f"{type(err).__name__}: {err}")
            results = [error] * len(runnable)
        for (item, _), result in zip(runnable, results, strict=True):
            if id(item) not in answered:
                self.answer(item, result, started, engine.decode)

    def control(
        self, item: Queued, request: RunRequest, engine: Backend, answered: set[int], started: float
    ) -> StepControl:
        """The step control of `item`'s job: its cancel flag, its drafts sent to its client if asked, and its result
        answered as soon as it is done (a cancelled job: once the backend says so), not when the rest of its batch
        ends."""

        def on_result(result: JobResult) -> None:
            if id(item) not in answered:
                answered.add(id(item))
                self.answer(item, result, started, engine.decode)

        control = StepControl(is_cancelled=item.cancel.is_set, on_result=on_result)
        if request.drafts:
            eos = engine.eos_token_ids
            control.on_draft = lambda step, rows: self.to_loop(
                item.connection.send,
                {
                    "event": "draft",
                    "job": item.request_id,
                    "step": step,
                    "texts": [engine.decode(before_eos(r, eos)) for r in rows],
                },
            )
        return control

    def answer(self, item: Queued, result: JobResult, started: float, decode: Decode) -> None:
        """Reply to `item` with its result, or its error or cancellation (`started`: when its batch began)."""
        if result.error is not None:
            self.reply_error(item, ErrorCode.ENGINE_ERROR, result.error)
        elif item.cancel.is_set() and not result.canvases:
            self.reply_error(item, ErrorCode.CANCELLED, "cancelled")
        else:
            self.reply(item, {"id": item.request_id, "result": run_result(run_reply_of(result, started, decode))})

    def reply(self, item: Queued, message: dict[str, Any]) -> None:
        def send() -> None:
            item.connection.jobs.pop(item.request_id, None)
            item.connection.send(message)

        self.to_loop(send)

    def reply_error(self, item: Queued, code: ErrorCode, text: str) -> None:
        self.reply(item, error_message(item.request_id, code, text))
