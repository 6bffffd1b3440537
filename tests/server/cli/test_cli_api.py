"""`diffusion-copilot api` as users start it: what it refuses before it listens."""

from __future__ import annotations

import subprocess
import sys

import pytest


def api(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "diffusion_copilot.server.cli", "api", *args],
                          capture_output=True, text=True, timeout=60, env=env)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.1", "example.com"])
def test_a_non_loopback_bind_without_a_token_is_refused(host: str) -> None:
    done = api("--host", host, "--port", "0")
    assert done.returncode == 2 and "without a token" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["--port", "70000"], "--port"),
    (["--max-queue", "0"], "--max-queue"),
    (["--time-budget-ms", "1"], "--time-budget-ms"),
    (["--max-body-bytes", "10"], "--max-body-bytes"),
    (["--canvas", "1000"], "--canvas"),
])
def test_bad_limits_are_refused_with_one_line(args: list[str], message: str) -> None:
    done = api(*args)
    assert done.returncode == 2 and message in done.stderr and len(done.stderr.strip().splitlines()) == 1
