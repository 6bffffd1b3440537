"""The plugin as a user sees it: nvim 0.12 in a real terminal (tmux), keys typed into the terminal, the screen
captured. The ghost text must be on screen where the cursor is, Tab must turn it into text that is saved.
The nvim also listens on a socket, so the test can read what the server sent.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from headless_nvim import (
    NvimSession,
    default_plugin_opts,
    init_lua,
    isolated_env,
    require_binary,
    stop_engines,
    wait_until,
)

pytestmark = pytest.mark.slow

SAMPLE = "def circle_area(radius):\n"
WIDTH, HEIGHT = 120, 24


class Tmux:
    """A private tmux server (its own socket) running one window."""

    def __init__(self, socket: str, env: dict[str, str]) -> None:
        self.socket, self.env = socket, env

    def run(self, *args: str) -> str:
        done = subprocess.run(
            ["tmux", "-L", self.socket, "-f", "/dev/null", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        return done.stdout

    def screen(self) -> list[str]:
        return self.run("capture-pane", "-p", "-t", "dc").split("\n")

    def send(self, *keys: str, literal: bool = False) -> None:
        self.run("send-keys", "-t", "dc", *(["-l"] if literal else []), *keys)


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[tuple[Tmux, NvimSession, Path]]:
    import pynvim

    if shutil.which("tmux") is None:
        reason = "tmux not installed: run .ci/setup.d/nvim.sh"
        pytest.fail(reason) if os.environ.get("CI") else pytest.skip(reason)
    binary = require_binary("0.12")
    runtime = tmp_path / "engine-run"
    sample = tmp_path / "sample.py"
    sample.write_text(SAMPLE)
    # The small default model is unsure of most tokens: without the confidence cut an answer is rarely empty,
    # and this test is about where the ghost text shows, not where it ends (nor whether the gate would show it).
    (tmp_path / "init.lua").write_text(
        init_lua(default_plugin_opts("settings = { minConfidence = 0, minAcceptance = 0, seed = 0 }")))
    listen = tmp_path / "nvim.sock"
    env = isolated_env(tmp_path / "home", runtime)
    env["TERM"] = "xterm-256color"
    tmux = Tmux(f"dc-test-{os.getpid()}", env)
    command = f"cd {tmp_path} && {binary} -i NONE -n -u init.lua --listen {listen} sample.py"
    tmux.run("new-session", "-d", "-s", "dc", "-x", str(WIDTH), "-y", str(HEIGHT), command)
    try:
        wait_until(listen.exists, bool, 30.0, "nvim to listen")
        nvim = NvimSession(pynvim.attach("socket", path=str(listen)))
        yield tmux, nvim, sample
    finally:
        (tmp_path / "screen.txt").write_text("\n".join(tmux.screen()))
        tmux.run("kill-server")
        stop_engines(runtime)


def ghost_state(nvim: NvimSession) -> dict[str, Any]:
    state: dict[str, Any] = nvim.state()
    return state


def test_ghost_text_on_screen_and_tab_saves_it(terminal: tuple[Tmux, NvimSession, Path]) -> None:
    from test_nvim_plugin import answered_empty, displayed, expected_ghost, responses, settled, wait_ready

    tmux, nvim, sample = terminal
    wait_ready(nvim)
    tmux.send("G", "o")
    tmux.send("return ", literal=True)
    for more in "radiu":  # sampling is random: after an empty answer, one more typed letter asks again
        state = nvim.wait(lambda s: settled(s) or answered_empty(s), "ghost text after typing in the terminal", 60.0)
        if settled(state):
            break
        tmux.send(more, literal=True)
    assert settled(state), state
    raw = expected_ghost(state, responses(state)[-1]["items"][0])
    ghost = displayed(raw)
    assert state["ghost"]["text"] == ghost
    typed_line = state["lines"][state["cursor"][0]]
    first_visible = ghost.split("\n")[0][:20].rstrip()
    next_lines = [line.strip()[:20] for line in ghost.split("\n")[1:] if line.strip()]

    def ghost_on_screen(screen: list[str]) -> bool:
        text = "\n".join(screen)
        row = next((r for r in screen if r.startswith(typed_line.rstrip())), None)
        return row is not None and first_visible in row and all(part in text for part in next_lines[:3])

    screen = wait_until(tmux.screen, ghost_on_screen, 10.0, "the ghost text on screen")
    assert screen[0].startswith("def circle_area(radius):")

    tmux.send("Tab")
    nvim.wait(lambda s: s["lines"] != state["lines"], "Tab to insert the suggestion", 10.0)
    tmux.send("Escape")
    nvim.wait(lambda s: s["mode"] == "n", "normal mode", 10.0)
    tmux.send(":w", "Enter")
    want = SAMPLE + typed_line + raw + "\n"
    wait_until(sample.read_text, lambda text: text == want, 10.0, "the file saved with the suggestion")
    after = wait_until(tmux.screen, lambda s: any(first_visible in row for row in s), 10.0, "the text on screen")
    # Neovim's own error lines, not the suggested code (which may well say "ValueError").
    assert not any(re.match(r"E\d+: |Error (executing|detected)", row) for row in after), after
