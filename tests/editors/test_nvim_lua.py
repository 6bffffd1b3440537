"""The plugin's Lua on its own: the pure-Lua unit tests (editors/nvim/tests, run with `nvim -l`) on each
Neovim, stylua formatting, and the Lua settings defaults against the server's settings schema.
"""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

import pytest
from headless_nvim import PLUGIN_DIR, require_binary, stylua_binary

from diffusion_copilot.server.settings import SECTION, default_section, machine_keys


@pytest.mark.parametrize("version", ["0.12", "0.11"])
def test_lua_unit_tests_pass(version: str) -> None:
    nvim = require_binary(version)
    done = subprocess.run(
        [str(nvim), "-l", "tests/run.lua"], cwd=PLUGIN_DIR, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert " passed, 0 failed" in done.stdout


def test_lua_is_formatted_with_stylua() -> None:
    stylua = stylua_binary()
    if stylua is None:
        reason = "stylua not installed: run .ci/setup.d/nvim.sh"
        pytest.fail(reason) if os.environ.get("CI") else pytest.skip(reason)
    done = subprocess.run([str(stylua), "--check", "."], cwd=PLUGIN_DIR, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def lua_json(expression: str) -> object:
    nvim = require_binary("0.12")
    script = f"vim.opt.rtp:prepend({str(PLUGIN_DIR)!r}) io.stdout:write(vim.json.encode({expression}))"
    done = subprocess.run(
        [str(nvim), "-l", "-"], input=script, capture_output=True, text=True, timeout=60, cwd=PLUGIN_DIR
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_lua_settings_defaults_match_the_server_schema() -> None:
    lua_defaults = lua_json("require('diffusion_copilot.settings').defaults()")
    assert lua_defaults == default_section()


def test_plugin_config_sends_the_settings_section() -> None:
    """All settings go in init_options, once at start; the machine keys never go in `settings`, which vim.lsp
    pushes and answers to workspace/configuration."""
    def sent(field: str) -> dict[str, Any]:
        value: dict[str, Any] = lua_json(
            "require('diffusion_copilot.client').lsp_config(require('diffusion_copilot.config').merge("
            "{ settings = { maxSteps = 8, engineCommand = { '/opt/dc' }, nextEdit = { enabled = false } } }), "
            "{ on_attach = function() end, "
            f"on_exit = function() end, on_status = function() end }}).{field}"
        )
        return value

    every_key = set(default_section())
    initial, workspace = sent("init_options")[SECTION], sent("settings")[SECTION]
    assert initial["maxSteps"] == workspace["maxSteps"] == 8 and initial["engineCommand"] == ["/opt/dc"]
    assert set(initial) == every_key
    assert initial["nextEdit"] == {**default_section()["nextEdit"], "enabled": False}  # a group merges key by key
    assert set(workspace) == every_key - set(machine_keys())
    assert lua_json("require('diffusion_copilot.settings').machine_keys") == list(machine_keys())
