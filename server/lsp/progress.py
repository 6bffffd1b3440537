"""The work-done progress a client shows while the engine loads (where the client supports it): begun when the
engine starts loading, ended when it leaves that state. A client that refuses it still gets the status
notification.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from lsprotocol import types as t
from pygls.lsp.server import LanguageServer

from diffusion_copilot.engine.protocol import EngineState, EngineStatus

log = logging.getLogger(__name__)


class LoadingProgress:
    """One "loading model" progress at a time, for `server`; `engine_status` gives the engine's status now."""

    def __init__(self, server: LanguageServer, spawn: Callable[[Coroutine[Any, Any, Any]], None],
                 engine_status: Callable[[], EngineStatus | None]) -> None:
        self.server = server
        self.spawn = spawn
        self.engine_status = engine_status
        self.token: str | None = None  # the progress shown now
        self.is_starting = False  # its creation was asked of the client and not answered yet

    def begin(self, message: str) -> None:
        """Show the progress, unless it is shown or being created."""
        if self.token is None and not self.is_starting:
            self.is_starting = True
            self.spawn(self._begin(message))

    async def _begin(self, message: str) -> None:
        try:
            window = self.server.client_capabilities.window
            if window is None or not window.work_done_progress:
                return
            token = f"diffusionCopilot/loading/{time.monotonic_ns()}"
            await self.server.work_done_progress.create_async(token)
            self.server.work_done_progress.begin(token, t.WorkDoneProgressBegin(
                title="Diffusion Copilot: loading model", message=message, cancellable=False))
            self.token = token
        except Exception as err:  # a client that refuses progress still gets the status notification
            log.info("work done progress refused: %s", err)
            return
        finally:
            self.is_starting = False
        status = self.engine_status()
        if status is not None and status.state is not EngineState.LOADING:
            self.end(status.message)

    def end(self, message: str) -> None:
        """End the progress shown, if any."""
        if self.token is not None:
            token, self.token = self.token, None
            self.server.work_done_progress.end(token, t.WorkDoneProgressEnd(message=message))
