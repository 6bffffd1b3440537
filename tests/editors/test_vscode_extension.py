"""The VS Code extension without VS Code: its contributed settings agree with the server's schema, its
contributions are wired, and the offline build (npm ci, tsc, eslint, unit tests, vsce package) passes.
"""

from __future__ import annotations

import json
import re
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import pytest

from diffusion_copilot.server.settings import settings_json_schema

REPO = Path(__file__).resolve().parents[2]
EXTENSION_DIR = REPO / "editors" / "vscode"
CLIENT_ONLY_PREFIXES = ("diffusionCopilot.server.", "diffusionCopilot.trace.")


def package_json() -> dict[str, Any]:
    package: dict[str, Any] = json.loads((EXTENSION_DIR / "package.json").read_text())
    return package


def contributed_settings() -> dict[str, Any]:
    return dict(package_json()["contributes"]["configuration"]["properties"])


def test_contributed_settings_are_the_server_schema() -> None:
    server = settings_json_schema()["properties"]
    contributed = contributed_settings()
    server_part = {key: spec for key, spec in contributed.items() if not key.startswith(CLIENT_ONLY_PREFIXES)}
    assert server_part == server, "run editors/vscode/scripts/sync_settings.py with the project's Python"


def test_the_extension_keeps_its_own_keys_out_of_the_server_section() -> None:
    server = settings_json_schema()["properties"]
    client_only = {key for key in contributed_settings() if key.startswith(CLIENT_ONLY_PREFIXES)}
    assert client_only == {
        "diffusionCopilot.server.command",
        "diffusionCopilot.server.python",
        "diffusionCopilot.server.extraArgs",
        "diffusionCopilot.trace.server",
    }
    assert not any(key.startswith(CLIENT_ONLY_PREFIXES) for key in server)
    # settings.ts strips exactly these first segments before the server sees the section.
    source = (EXTENSION_DIR / "src" / "settings.ts").read_text()
    declared = re.search(r"CLIENT_ONLY_KEYS: readonly string\[\] = \[(.*?)\]", source)
    assert declared is not None
    assert sorted(re.findall(r'"(\w+)"', declared[1])) == sorted({key.split(".")[1] for key in client_only})


def test_the_extension_sends_the_machine_keys_only_at_start() -> None:
    """settings.ts keeps the server's machine keys out of pushes and configuration answers (docs/protocol.md)."""
    from diffusion_copilot.server.settings import machine_keys

    source = (EXTENSION_DIR / "src" / "settings.ts").read_text()
    declared = re.search(r"MACHINE_KEYS: readonly string\[\] = \[(.*?)\]", source)
    assert declared is not None
    assert sorted(re.findall(r'"(\w+)"', declared[1])) == sorted(machine_keys())


def test_every_contributed_command_is_registered() -> None:
    contributed = {command["command"] for command in package_json()["contributes"]["commands"]}
    sources = "\n".join(path.read_text() for path in (EXTENSION_DIR / "src").glob("*.ts"))
    constants = dict(re.findall(r'const (\w+) = "([\w.]+)";', sources))
    registered = {constants.get(arg, arg.strip('"')) for arg in re.findall(r'registerCommand\(("[\w.]+"|\w+)', sources)}
    assert contributed == registered
    assert {
        "diffusionCopilot.trigger",
        "diffusionCopilot.toggle",
        "diffusionCopilot.restart",
        "diffusionCopilot.showLog",
        "diffusionCopilot.showStats",
    } <= contributed


@pytest.mark.parametrize(
    ("key", "command"),
    [
        ("ctrl+right", "editor.action.inlineSuggest.acceptNextWord"),
        ("alt+]", "editor.action.inlineSuggest.showNext"),
        ("alt+[", "editor.action.inlineSuggest.showPrevious"),
    ],
)
def test_inline_suggestion_keys(key: str, command: str) -> None:
    bindings = package_json()["contributes"]["keybindings"]
    assert any(b["key"] == key and b["command"] == command and "inlineSuggestionVisible" in b["when"] for b in bindings)


def run_npm(*args: str, timeout_s: float = 600) -> str:
    done = subprocess.run(["npm", *args], cwd=EXTENSION_DIR, capture_output=True, text=True, timeout=timeout_s)
    assert done.returncode == 0, f"npm {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


@pytest.mark.slow
def test_offline_build_lint_unit_tests_and_package(tmp_path: Path) -> None:
    run_npm("ci", "--prefer-offline", "--no-audit", "--no-fund")
    run_npm("run", "build")
    run_npm("run", "lint")
    unit = run_npm("test")
    passed = re.search(r"^# pass (\d+)$", unit, flags=re.MULTILINE)
    assert passed is not None and int(passed[1]) >= 20
    assert re.search(r"^# fail 0$", unit, flags=re.MULTILINE)

    vsix = tmp_path / "diffusion-copilot.vsix"
    run_npm("exec", "--", "vsce", "package", "--allow-missing-repository", "--out", str(vsix))
    with zipfile.ZipFile(vsix) as archive:
        names = set(archive.namelist())
        manifest = json.loads(archive.read("extension/package.json"))
    assert "extension/out/src/extension.js" in names
    assert "extension/node_modules/vscode-languageclient/package.json" in names
    assert not any(name.endswith(".ts") and not name.endswith(".d.ts") for name in names)
    assert not any(
        name.startswith(("extension/src/", "extension/test/", "extension/e2e/", "extension/scripts/")) for name in names
    )
    assert manifest["contributes"]["configuration"]["properties"] == contributed_settings()
