"""Settings that name a program, a server or a secret (`engineCommand`, `vllmUrls`, `vllmTokenEnv`) reach the real
`diffusion-copilot serve` only through `initializationOptions`: a workspace configuration answer or a push cannot
run a command or send a token anywhere, and the server says which keys it ignored."""

from __future__ import annotations

import asyncio
import sys
import threading
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from lsp_harness import TIMEOUT_S, LspEnv, Session, lsp_env, started
from lsprotocol import types as t

__all__ = ["lsp_env"]
URI = "file:///work/example.py"
SECRET = "hunter2-not-for-any-server"


def touching_command(marker: Path) -> list[str]:
    """An engine command that only creates `marker` and fails (the engine arguments follow `marker`)."""
    return [sys.executable, "-c", "import pathlib, sys; pathlib.Path(sys.argv[1]).touch(); sys.exit(3)", str(marker)]


async def warning_naming(s: Session, *keys: str) -> str:
    """The text of the first warning shown that names every one of `keys`."""
    async def wait() -> str:
        while True:
            for message in s.client.messages:
                if message.type == t.MessageType.Warning and all(key in message.message for key in keys):
                    return message.message
            await s.client.wait_for_notification(t.WINDOW_SHOW_MESSAGE)

    return await asyncio.wait_for(wait(), TIMEOUT_S)


async def from_workspace(s: Session, how: str, settings: dict[str, Any]) -> None:
    """Send `settings` as workspace settings: pushed in a didChangeConfiguration, or answered when pulled."""
    if how == "push":
        s.configure(**settings)
        return
    s.client.set_configuration(settings, section="diffusionCopilot")
    s.pulled.clear()
    s.client.workspace_did_change_configuration(t.DidChangeConfigurationParams(settings=None))
    await asyncio.wait_for(s.pulled.wait(), TIMEOUT_S)


@pytest.mark.parametrize("how", ["push", "pull"])
async def test_engine_command_runs_from_initialization_options_only(lsp_env: LspEnv, tmp_path: Path, how: str
                                                                     ) -> None:
    own = replace(lsp_env, env={**lsp_env.env, "DIFFUSION_COPILOT_RUNTIME_DIR": str(tmp_path / "run")},
                  runtime_dir=tmp_path / "run")  # no running engine to connect to: a command would start
    trusted, pushed = tmp_path / "trusted-ran", tmp_path / "workspace-ran"
    async with started(own, own.settings(engineCommand=touching_command(trusted))) as s:
        await s.wait_status(lambda st: st["state"] == "error")  # the command ran (and failed on purpose)
        assert trusted.exists()
        await from_workspace(s, how, own.settings(engineCommand=touching_command(pushed), dtype="float32"))
        warning = await warning_naming(s, "engineCommand")
        assert "user settings" in warning
        s.open(URI, "x = ")
        assert await s.complete(URI, 0, 4) is None  # the engine still fails: the kept command is the trusted one
    assert not pushed.exists()


async def test_a_pushed_vllm_url_never_gets_a_token(lsp_env: LspEnv) -> None:
    requests: list[dict[str, str]] = []

    class Recorder(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requests.append(dict(self.headers))
            self.send_error(404)

        do_POST = do_GET

        def log_message(self, format: str, *args: Any) -> None:
            pass

    http = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{http.server_address[1]}"
    own = replace(lsp_env, env={**lsp_env.env, "SOME_SECRET": SECRET})
    try:
        async with started(own) as s:
            await s.wait_ready()
            s.configure(**own.settings(backend="vllm", vllmUrls=[url], vllmTokenEnv="SOME_SECRET"))
            await warning_naming(s, "vllmUrls", "vllmTokenEnv")
            s.open(URI, "x = ")
            result = await s.complete(URI, 0, 4)
            assert result is not None  # answered by the engine of this machine, not the pushed server
    finally:
        http.shutdown()
        http.server_close()
    assert requests == []

