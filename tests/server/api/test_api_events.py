"""How one API request lives: an event stream whose client goes away leaves no task behind."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from typing import Any

from diffusion_copilot.server.api.events import Emit, EventSource


def test_a_stream_whose_client_went_away_leaves_no_pending_task() -> None:
    async def main() -> list[str]:
        problems: list[str] = []
        asyncio.get_running_loop().set_exception_handler(lambda _, context: problems.append(context["message"]))
        started = asyncio.Event()

        async def produce(emit: Emit) -> bytes:
            started.set()
            await asyncio.Event().wait()  # a job that is still denoising
            return b""

        source: Any = EventSource(produce)
        await started.wait()
        waiter: Any = asyncio.ensure_future(source.next())
        for _ in range(3):
            await asyncio.sleep(0)  # it now waits for the next event
        waiter.cancel()  # the client disconnected: Starlette cancels the response's task
        with contextlib.suppress(asyncio.CancelledError):
            await waiter
        source.cancel()
        for _ in range(3):
            await asyncio.sleep(0)
        del source, waiter
        gc.collect()
        await asyncio.sleep(0)
        return problems

    problems = asyncio.run(main())
    assert not [p for p in problems if "destroyed but it is pending" in p], problems


def test_events_arrive_in_order_then_the_last() -> None:
    async def main() -> list[bytes | None]:
        async def produce(emit: Emit) -> bytes:
            emit(b"a")
            await asyncio.sleep(0)
            emit(b"b")
            return b"last"

        source = EventSource(produce)
        return [await source.next() for _ in range(4)]

    assert asyncio.run(main()) == [b"a", b"b", b"last", None]
