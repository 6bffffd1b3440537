"""What the language-server tests share: an isolated runtime and state directory per test session (so tests never
meet a user's engine), the real `diffusion-copilot serve` process driven by pytest-lsp, and helpers that wait on
notifications instead of sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types as t
from pytest_lsp import ClientServerConfig, LanguageClient

STATUS = "diffusionCopilot/status"
TIMEOUT_S = 60.0


@dataclass
class LspEnv:
    """The environment of one test session's servers and engines."""

    env: dict[str, str]
    model: str
    runtime_dir: Path
    state_dir: Path

    def settings(self, **overrides: Any) -> dict[str, Any]:
        base = {"model": self.model, "device": "cpu", "debounceMs": 0, "maxSteps": 8, "canvasLength": 32}
        return {**base, **overrides}

    @property
    def telemetry(self) -> Path:
        return self.state_dir / "diffusion-copilot" / "telemetry.sqlite3"

    def telemetry_rows(self) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.telemetry) as db:
            return db.execute("SELECT id, trigger, source, items, shown, accepted, accepted_chars "
                              "FROM completions ORDER BY created_s").fetchall()


def server_command() -> list[str]:
    return [sys.executable, "-m", "diffusion_copilot.server.cli", "--log-level", "INFO", "serve"]


def stop_engines(runtime_dir: Path) -> None:
    """Ask every engine of `runtime_dir` to exit, and wait until its lock is released."""
    for sock in runtime_dir.glob("engine-*.sock"):
        with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX) as s:
            s.settimeout(10)
            s.connect(str(sock))
            s.sendall(b'{"id": 1, "method": "shutdown"}\n')
            with contextlib.suppress(OSError):
                while s.recv(65536):
                    pass
    for lock in runtime_dir.glob("engine-*.lock"):
        pid = int(lock.read_text().strip() or 0)
        deadline = time.monotonic() + 20
        while pid and time.monotonic() < deadline and process_alive(pid):
            time.sleep(0.05)


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError), open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(")")[-1].split()[0] != "Z"
    return True


@pytest.fixture(scope="session")
def lsp_env(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("lsp")
    env = {**os.environ, "DIFFUSION_COPILOT_RUNTIME_DIR": str(root / "run"), "XDG_STATE_HOME": str(root / "state"),
           "DIFFUSION_COPILOT_ENGINE_IDLE_EXIT_S": "30"}  # an engine this session missed stops by itself
    lsp = LspEnv(env=env, model=str(tiny_checkpoint), runtime_dir=root / "run", state_dir=root / "state")
    yield lsp
    stop_engines(lsp.runtime_dir)


@dataclass
class Session:
    """A started language server and what it has told the client."""

    client: LanguageClient
    statuses: list[dict[str, Any]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    pulled: asyncio.Event = field(default_factory=asyncio.Event)  # the server asked for its configuration

    async def wait_status(self, accept: Callable[[dict[str, Any]], bool], timeout_s: float = TIMEOUT_S
                          ) -> dict[str, Any]:
        """The first status notification (from now on, or the latest one) that `accept` likes."""
        async def wait() -> dict[str, Any]:
            while True:
                if self.statuses and accept(self.statuses[-1]):
                    return self.statuses[-1]
                self.changed.clear()
                await self.changed.wait()

        return await asyncio.wait_for(wait(), timeout_s)

    async def wait_ready(self) -> dict[str, Any]:
        return await self.wait_status(lambda s: s["state"] == "ready")

    def open(self, uri: str, text: str, language: str = "python", version: int = 1) -> None:
        self.client.text_document_did_open(t.DidOpenTextDocumentParams(
            text_document=t.TextDocumentItem(uri=uri, language_id=language, version=version, text=text)))

    def change(self, uri: str, version: int, start: tuple[int, int], end: tuple[int, int], text: str) -> None:
        rng = t.Range(start=t.Position(*start), end=t.Position(*end))
        self.client.text_document_did_change(t.DidChangeTextDocumentParams(
            text_document=t.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[t.TextDocumentContentChangePartial(range=rng, text=text)]))

    def configure(self, **settings: Any) -> None:
        self.client.workspace_did_change_configuration(
            t.DidChangeConfigurationParams(settings={"diffusionCopilot": settings}))

    async def complete(self, uri: str, line: int, character: int, invoked: bool = False,
                       selected: t.SelectedCompletionInfo | None = None) -> t.InlineCompletionList | None:
        kind = t.InlineCompletionTriggerKind.Invoked if invoked else t.InlineCompletionTriggerKind.Automatic
        result = await asyncio.wait_for(self.client.text_document_inline_completion_async(params(
            uri, line, character, kind, selected)), TIMEOUT_S)
        assert result is None or isinstance(result, t.InlineCompletionList)
        return result


def params(uri: str, line: int, character: int, kind: t.InlineCompletionTriggerKind,
           selected: t.SelectedCompletionInfo | None = None) -> t.InlineCompletionParams:
    return t.InlineCompletionParams(
        text_document=t.TextDocumentIdentifier(uri=uri), position=t.Position(line=line, character=character),
        context=t.InlineCompletionContext(trigger_kind=kind, selected_completion_info=selected))


@contextlib.asynccontextmanager
async def started(lsp: LspEnv, settings: dict[str, Any] | None = None, encodings: list[str] | None = None,
                  progress: bool = True) -> AsyncIterator[Session]:
    """A real `diffusion-copilot serve` over stdio, initialized with `settings` under `diffusionCopilot`."""
    client = await ClientServerConfig(server_command=server_command(), server_env=lsp.env).start()
    assert isinstance(client, LanguageClient)
    session = Session(client)

    @client.feature(STATUS)
    def on_status(status: Any) -> None:
        session.statuses.append(as_dict(status))
        session.changed.set()

    features = client.protocol.fm.features
    answer_configuration = features[t.WORKSPACE_CONFIGURATION]

    def configuration(params: t.ConfigurationParams) -> Any:
        session.pulled.set()
        return answer_configuration(params)

    features[t.WORKSPACE_CONFIGURATION] = configuration

    capabilities = t.ClientCapabilities(
        text_document=t.TextDocumentClientCapabilities(
            inline_completion=t.InlineCompletionClientCapabilities(dynamic_registration=False)),
        window=t.WindowClientCapabilities(work_done_progress=progress),
        workspace=t.WorkspaceClientCapabilities(configuration=True, did_change_configuration=
                                                t.DidChangeConfigurationClientCapabilities()),
        general=t.GeneralClientCapabilities(position_encodings=encodings) if encodings else None,
    )
    client.set_configuration(settings if settings is not None else lsp.settings(), section="diffusionCopilot")
    session.result = await client.initialize_session(t.InitializeParams(  # type: ignore[attr-defined]
        capabilities=capabilities,
        initialization_options={"diffusionCopilot": settings if settings is not None else lsp.settings()}))
    try:
        yield session
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.shutdown_session(), TIMEOUT_S)
        await client.stop()


def as_dict(value: Any) -> dict[str, Any]:
    """A custom notification's params (pygls gives them as a namedtuple-like object) as a dict."""
    if isinstance(value, dict):
        return value
    if hasattr(value, "_asdict"):
        return dict(value._asdict())
    return json.loads(json.dumps(value, default=lambda o: o.__dict__))
