"""How one completion request lives over HTTP: its place in the queue (released exactly once), cancellation when
the client goes away, and server-sent event streams that commit to a 200 only once the engine has started the
job, so that a request refused or timed out while queued still gets its error status.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.background import BackgroundTask

from .completion import ApiError, EngineGate
from .models import ErrorResponse
from .stream import sse

T = TypeVar("T")
CLIENT_GONE = 499  # nobody reads it; recorded in the metrics
Emit = Callable[[bytes], None]


def error_response(err: ApiError) -> Response:
    headers = {"Retry-After": str(err.retry_after_s)} if err.retry_after_s is not None else None
    return JSONResponse(error_body(err), status_code=err.status, headers=headers)


def error_body(err: ApiError) -> dict[str, Any]:
    return ErrorResponse.model_validate({"error": {"message": err.message, "type": err.kind, "code": err.code,
                                                   "param": err.param}}).model_dump()


async def disconnected(request: Request) -> None:
    """Returns when the client closes the connection."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def unless_disconnected(request: Request, work: Coroutine[Any, Any, T]) -> tuple[bool, T | None]:
    """(True, result of `work`), or (False, None) when the client went away first (`work` is then cancelled)."""
    task = asyncio.ensure_future(work)
    watch = asyncio.ensure_future(disconnected(request))
    try:
        await asyncio.wait({task, watch}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            return True, task.result()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return False, None
    finally:
        watch.cancel()
        if not task.done():
            task.cancel()


class Slot:
    """A place in the API's queue, released exactly once, whatever way the request ends."""

    def __init__(self, release: Callable[[], Awaitable[object]]) -> None:
        self._release: Callable[[], Awaitable[object]] | None = release

    @classmethod
    async def take(cls, gate: EngineGate, budget_s: float) -> Slot:
        """A slot, or ApiError 429/503."""
        holder = gate.admitted(budget_s)
        await holder.__aenter__()
        return cls(lambda: holder.__aexit__(None, None, None))

    async def release(self) -> None:
        if self._release is not None:
            release, self._release = self._release, None
            await release()

    async def answer(self, request: Request, answer: Callable[[], Awaitable[Response]]) -> Response:
        """`answer()`, cancelled (and its engine job with it) if the client goes away first."""
        async def run() -> Response:
            return await answer()

        try:
            finished, response = await unless_disconnected(request, run())
            return response if finished and response is not None else Response(status_code=CLIENT_GONE)
        except ApiError as err:
            return error_response(err)
        finally:
            await self.release()


class EventSource:
    """The events of one job: `produce(emit)` runs it, emitting events as they happen, and returns the last."""

    def __init__(self, produce: Callable[[Emit], Awaitable[bytes]]) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()
        self.work = asyncio.ensure_future(produce(self.queue.put_nowait))
        self.finished = False

    async def next(self) -> bytes | None:
        """The next event, None after the last; raises the job's ApiError."""
        while True:
            if not self.queue.empty():
                return self.queue.get_nowait()
            if self.work.done():
                if self.finished:
                    return None
                self.finished = True
                return self.work.result()
            getter = asyncio.ensure_future(self.queue.get())
            try:
                await asyncio.wait({self.work, getter}, return_when=asyncio.FIRST_COMPLETED)
            except BaseException:  # the client went away and this wait was cancelled: leave no task pending
                getter.cancel()
                raise
            if getter.done():
                return getter.result()
            getter.cancel()

    def cancel(self) -> None:
        if not self.work.done():
            self.work.cancel()


async def event_stream(request: Request, slot: Slot, source: EventSource) -> Response:
    """Server-sent events of `source`, once its first event is there; an error before that is an error status."""
    try:
        finished, first = await unless_disconnected(request, source.next())
    except ApiError as err:
        await slot.release()
        return error_response(err)
    except BaseException:
        source.cancel()
        await slot.release()
        raise
    if not finished or first is None:
        source.cancel()
        await slot.release()
        return Response(status_code=CLIENT_GONE)

    async def events() -> AsyncIterator[bytes]:
        try:
            yield first
            while (event := await source.next()) is not None:
                yield event
        except ApiError as err:
            yield sse("error", error_body(err))
        finally:
            source.cancel()
            await slot.release()

    return StreamingResponse(events(), media_type="text/event-stream", background=BackgroundTask(slot.release),
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
