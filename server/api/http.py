"""How uvicorn serves the API: its h11 protocol with a deadline for each request's headers (uvicorn has none, so
a client that connects and sends nothing, or trickles its headers, would hold a connection for as long as it
likes; idle keep-alive connections keep uvicorn's own timeout), and its server, telling the app as soon as a
signal asks it to stop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from types import FrameType

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)

HEADER_TIMEOUT_S = 10.0


class HeaderDeadlineProtocol(H11Protocol):
    """Closes a connection whose next request's headers are not complete `header_timeout_s` after it opened or
    after that request's first byte came."""

    header_timeout_s = HEADER_TIMEOUT_S
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:  # the headers are in: the request is being read or answered
            self._disarm()
        elif self._header_timer is None:  # the first bytes of the next request on a kept-alive connection
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            log.info("closed a connection from %s: no complete request headers within %.0f s", self.client,
                     self.header_timeout_s)
            self.transport.close()


def protocol_with_header_timeout(seconds: float) -> type[HeaderDeadlineProtocol]:
    """The protocol class for uvicorn's `http` setting, with its deadline."""
    return type("HeaderDeadlineProtocol", (HeaderDeadlineProtocol,), {"header_timeout_s": seconds})


class StoppingServer(uvicorn.Server):
    """uvicorn's server, calling `on_exit` when a signal asks it to stop, before the requests in flight drain."""

    def __init__(self, config: uvicorn.Config, on_exit: Callable[[], None]) -> None:
        super().__init__(config)
        self.on_exit = on_exit

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.on_exit()
        super().handle_exit(sig, frame)
