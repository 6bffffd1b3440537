"""What the HTTP API tests share: the real `diffusion-copilot api` process on a free loopback port, on the same
engine process as the language-server tests (one engine per machine), and a wait for it to be ready.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

READY_TIMEOUT_S = 90.0


@dataclass(frozen=True)
class ApiServer:
    url: str
    process: subprocess.Popen[bytes]
    log: Path
    token: str | None = None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.headers, timeout=60.0, **kwargs)  # type: ignore[arg-type]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def api_command(port: int, model: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "diffusion_copilot.server.cli", "--log-level", "INFO", "api", "--port", str(port),
            "--model", model, "--device", "cpu", *extra]


@contextlib.contextmanager
def running_api(env: dict[str, str], model: str, log_dir: Path, *extra: str, token: str | None = None
                ) -> Iterator[ApiServer]:
    """A real API server process, ready (engine loaded) when this yields; stopped afterwards."""
    port = free_port()
    log = log_dir / f"api-{port}.log"
    args = [*extra, "--token", token] if token else list(extra)
    with log.open("wb") as out:
        process = subprocess.Popen(api_command(port, model, *args), env=env, stdout=out, stderr=subprocess.STDOUT)
    server = ApiServer(f"http://127.0.0.1:{port}", process, log, token)
    try:
        wait_ready(server)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_ready(server: ApiServer) -> None:
    """Poll /v1/health until the engine is ready; fail with the server's log if it dies or never gets there."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    delay_s = 0.05
    with server.client() as client:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                raise AssertionError(f"the API server exited ({server.process.returncode}):\n"
                                     f"{server.log.read_text()[-3000:]}")
            with contextlib.suppress(httpx.TransportError):
                if client.get("/v1/health").json().get("status") == "ok":
                    return
            time.sleep(delay_s)  # polling a condition, with a deadline
            delay_s = min(delay_s * 1.5, 0.5)
    raise AssertionError(f"the API server was not ready in {READY_TIMEOUT_S:.0f} s:\n{server.log.read_text()[-3000:]}")
