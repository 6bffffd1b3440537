"""Private runtime files: every folder the project makes is 0700 (a looser one of ours is tightened), every file
0600; checked on the helpers and on a real engine process and language server."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from lsp_harness import stop_engines

from diffusion_copilot.engine.user_dirs import open_private, private_dir
from diffusion_copilot.server.engine_client import EngineClient, EngineSpec, engine_paths, runtime_dir


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture(autouse=True)
def usual_umask() -> Iterator[None]:
    old = os.umask(0o022)  # the common default, under which plain mkdir/open give 0755/0644
    yield
    os.umask(old)


def test_missing_folders_are_created_private(tmp_path: Path) -> None:
    target = private_dir(tmp_path / "a" / "b" / "c")
    assert [mode(p) for p in (tmp_path / "a", tmp_path / "a" / "b", target)] == [0o700] * 3


def test_looser_folders_are_tightened_up_to_the_top_only(tmp_path: Path) -> None:
    outer, top, inner = tmp_path / "home", tmp_path / "home" / "project", tmp_path / "home" / "project" / "run"
    inner.mkdir(parents=True, mode=0o755)
    for folder in (outer, top, inner):
        folder.chmod(0o755)
    private_dir(inner, top=top)
    assert (mode(outer), mode(top), mode(inner)) == (0o755, 0o700, 0o700)
    private_dir(outer / "elsewhere", top=top)  # a top that is not above it: only the folder itself
    assert mode(outer) == 0o755 and mode(outer / "elsewhere") == 0o700


def test_files_are_created_private_and_tightened(tmp_path: Path) -> None:
    os.close(open_private(tmp_path / "new.log", os.O_WRONLY))
    assert mode(tmp_path / "new.log") == 0o600
    loose = tmp_path / "old.log"
    loose.write_text("kept\n")
    loose.chmod(0o644)
    with os.fdopen(open_private(loose, os.O_WRONLY | os.O_APPEND), "a") as file:
        file.write("more\n")
    assert mode(loose) == 0o600 and loose.read_text() == "kept\nmore\n"


@pytest.fixture
def short_path() -> Iterator[Path]:
    """A folder with a short path: a socket path has at most 107 bytes."""
    with tempfile.TemporaryDirectory(prefix="dc-", dir="/tmp") as folder:
        yield Path(folder)


async def test_the_engine_keeps_its_runtime_files_private(tiny_checkpoint: Path, short_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    cache = short_path / "cache"
    project = cache / "diffusion-copilot"
    (project / "run").mkdir(parents=True)
    for folder in (cache, project, project / "run"):
        folder.chmod(0o755)  # as an older version, or a plain mkdir, left them
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.delenv("DIFFUSION_COPILOT_RUNTIME_DIR", raising=False)
    assert runtime_dir() == project / "run"
    spec = EngineSpec(model=str(tiny_checkpoint), device="cpu")
    client = EngineClient(spec)
    try:
        assert await asyncio.wait_for(client.connect(), 120) is None
        socket_path, lock_path, log_path = engine_paths(spec, project / "run")
        assert mode(cache) == 0o755  # the user's cache folder is not the project's to change
        assert (mode(project), mode(project / "run")) == (0o700, 0o700)
        assert (mode(socket_path), mode(lock_path), mode(log_path)) == (0o600, 0o600, 0o600)
    finally:
        await client.close()
        stop_engines(project / "run")


def test_the_language_server_log_file_is_private(tmp_path: Path) -> None:
    log_file = tmp_path / "serve.log"
    done = subprocess.run([sys.executable, "-m", "diffusion_copilot.server.cli", "serve", "--log-file",
                           str(log_file)], stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert mode(log_file) == 0o600
