"""The one settings schema: validation keeps old values on bad input, and the VS Code package.json and the
Neovim defaults agree with it."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import pytest

from diffusion_copilot.server.settings import (
    CLIENT_KEYS,
    KEYS,
    Settings,
    default_section,
    field_name,
    machine_keys,
    section_of,
    settings_json_schema,
    updated,
    workspace_part,
)

ROOT = Path(__file__).resolve().parents[2]


def test_every_field_has_a_key() -> None:
    assert {f.name for f in dataclasses.fields(Settings)} == {field_name(k) for k in KEYS}


@pytest.mark.parametrize(("raw", "field", "value"), [
    ({"maxSteps": 8}, "max_steps", 8),
    ({"enabledLanguages": ["python", "go"]}, "enabled_languages", ("python", "go")),
    ({"model": ""}, "model", None),
    ({"device": "cuda:1"}, "device", "cuda:1"),
    ({"seed": None}, "seed", None),
    ({"engineCommand": ["/opt/bin/diffusion-copilot", "engine"]}, "engine_command",
     ("/opt/bin/diffusion-copilot", "engine")),
    ({"vllmUrls": ["http://gpu-a:8000", " https://gpu-b.example/v1 "]}, "vllm_urls",
     ("http://gpu-a:8000", "https://gpu-b.example/v1")),
    ({"backend": "vllm", "vllmUrls": ["http://127.0.0.1:8000"]}, "backend", "vllm"),
    ({"vllmTokenEnv": "DIFFUSION_COPILOT_TEAM_TOKEN"}, "vllm_token_env", "DIFFUSION_COPILOT_TEAM_TOKEN"),
    ({"nextEdit": {"enabled": False}}, "next_edit_enabled", False),
    ({"nextEdit.minConfidence": 0.25}, "next_edit_min_confidence", 0.25),
    ({"nextEdit": {"debounceMs": 0}}, "next_edit_debounce_ms", 0),
])
def test_valid_values_apply(raw: dict[str, Any], field: str, value: Any) -> None:
    settings, warnings = updated(Settings(), raw)
    assert warnings == () and getattr(settings, field) == value


@pytest.mark.parametrize("raw", [
    {"maxSteps": 0}, {"maxSteps": "8"}, {"maxSteps": True}, {"canvasLength": 1000}, {"device": "tpu"},
    {"dtype": "int4"}, {"enable": "yes"}, {"enabledLanguages": "python"}, {"seed": -1}, {"alternatives": 2.5},
    {"backend": "onnx"}, {"vllmUrls": "http://gpu-a:8000"}, {"vllmUrls": ["gpu-a:8000"]},
    {"vllmUrls": ["ftp://gpu-a"]}, {"vllmUrls": ["http://"]}, {"vllmTokenEnv": "$TOKEN"}, {"vllmTokenEnv": ""},
    {"vllmTokenEnv": "AWS_SECRET_ACCESS_KEY"}, {"vllmTokenEnv": "diffusion_copilot_token"},
    {"nextEdit": {"enabled": "no"}}, {"nextEdit": {"minConfidence": 2}}, {"nextEdit": {"debounceMs": -1}},
    {"nextEdit": True}, {"nextEdit": {"enable": False}},
])
def test_bad_values_warn_and_keep_the_previous_value(raw: dict[str, Any]) -> None:
    before = Settings(max_steps=12)
    after, warnings = updated(before, raw)
    assert after == before and len(warnings) == 1 and next(iter(raw)) in warnings[0]


@pytest.mark.parametrize("raw", [{"backend": "vllm"}, {"backend": "vllm", "vllmUrls": []}])
def test_vllm_backend_without_urls_keeps_the_previous_backend(raw: dict[str, Any]) -> None:
    after, warnings = updated(Settings(), raw)
    assert after == Settings() and len(warnings) == 1 and "vllmUrls" in warnings[0]


def test_removing_the_last_vllm_url_keeps_the_deployment() -> None:
    before, _ = updated(Settings(), {"backend": "vllm", "vllmUrls": ["http://gpu-a:8000"]})
    after, warnings = updated(before, {"vllmUrls": [], "maxSteps": 8})
    assert after == dataclasses.replace(before, max_steps=8) and len(warnings) == 1
    switched, warnings = updated(before, {"backend": "transformers", "vllmUrls": []})
    assert warnings == () and switched.backend == "transformers"


def test_workspace_settings_cannot_change_the_machine_keys() -> None:
    current = Settings(engine_command=("/opt/dc/engine",), vllm_urls=("http://gpu-a:8000",), backend="vllm")
    raw = {"engineCommand": ["sh", "-c", "id"], "vllmUrls": ["http://evil:80"], "vllmTokenEnv": "HOME",
           "maxSteps": 8}
    kept, warning = workspace_part(current, raw)
    assert kept == {"maxSteps": 8}
    assert warning is not None and all(f"diffusionCopilot.{key}" in warning for key in raw if key != "maxSteps")
    same = {"engineCommand": ["/opt/dc/engine"], "vllmUrls": ["http://gpu-a:8000"], "maxSteps": 8}
    assert workspace_part(current, same) == ({"maxSteps": 8}, None)  # the values in force: nothing ignored
    assert set(machine_keys()) == {"engineCommand", "vllmUrls", "vllmTokenEnv"}


def test_unknown_keys_warn() -> None:
    after, warnings = updated(Settings(), {"maxStep": 3})
    assert after == Settings() and "unknown" in warnings[0]


@pytest.mark.parametrize(("raw", "section"), [
    ({"diffusionCopilot": {"maxSteps": 3}}, {"maxSteps": 3}),
    ({"diffusionCopilot.maxSteps": 3}, {"maxSteps": 3}),
    ({"diffusionCopilot.nextEdit.enabled": False}, {"nextEdit.enabled": False}),
    ({"nextEdit": {"enabled": False}}, {"nextEdit": {"enabled": False}}),
    ({"maxSteps": 3}, {"maxSteps": 3}),
    ({"other": 1}, None),
    (None, None),
])
def test_section_of(raw: Any, section: dict[str, Any] | None) -> None:
    assert section_of(raw) == section


def test_languages() -> None:
    s = Settings()
    assert s.is_enabled_for("python") and not s.is_enabled_for("plaintext")
    assert not Settings(enabled_languages=("go",)).is_enabled_for("python")
    assert not Settings(enable=False).is_enabled_for("python")


def test_vscode_package_json_matches_the_schema() -> None:
    package = json.loads((ROOT / "editors" / "vscode" / "package.json").read_text())
    contributed = package["contributes"]["configuration"]["properties"]
    for key, spec in settings_json_schema()["properties"].items():
        assert key in contributed, key
        for field in ("type", "default", "minimum", "maximum", "enum", "scope"):
            assert contributed[key].get(field) == spec.get(field), (key, field)
    client_side = {k for k in contributed if k.split(".")[1] in CLIENT_KEYS}
    assert set(contributed) - client_side == set(settings_json_schema()["properties"])
    # what names a program, a server or a secret: user (machine) settings only, never a workspace's
    machine = {f"diffusionCopilot.{key}" for key in machine_keys()} | {k for k in client_side if ".server." in k}
    assert {k for k, spec in contributed.items() if spec.get("scope") in ("machine", "application")} == machine
    untrusted = package["capabilities"]["untrustedWorkspaces"]
    assert untrusted["supported"] == "limited" and set(untrusted["restrictedConfigurations"]) == machine
    assert updated(Settings(), {"server": {"command": "x"}, "trace": {"server": "verbose"}}) == (Settings(), ())


def lua_value(text: str) -> Any:
    text = text.strip()
    if text in ("true", "false"):
        return text == "true"
    if text == "vim.NIL":
        return None
    if text.startswith("{") and " = " in text:  # a nested group: { enabled = true, debounceMs = 300 }
        return {k.strip(): lua_value(v) for k, v in (p.split(" = ") for p in text.strip("{} ").split(",") if p.strip())}
    if text.startswith("{"):
        return [lua_value(v) for v in text.strip("{} ").split(",") if v.strip()]
    if text[0] in "'\"":
        return text[1:-1]
    return float(text) if "." in text else int(text)


def test_neovim_defaults_match_the_schema() -> None:
    source = (ROOT / "editors" / "nvim" / "lua" / "diffusion_copilot" / "settings.lua").read_text()
    body = source[source.index("function M.defaults()"):]
    defaults = {m[1]: lua_value(m[2]) for m in re.finditer(r"^\s+(\w+) = (.+?),\s*$", body, re.M)}
    assert defaults == default_section()


def test_next_edit_keys_are_one_nested_group_for_clients() -> None:
    """VS Code's getConfiguration and the Lua defaults give dotted keys as one nested object; both forms apply."""
    assert default_section()["nextEdit"] == {"enabled": True, "minConfidence": 0.5, "debounceMs": 300}
    nested, _ = updated(Settings(), {"nextEdit": {"enabled": False, "debounceMs": 40}})
    dotted, _ = updated(Settings(), {"nextEdit.enabled": False, "nextEdit.debounceMs": 40})
    assert nested == dotted == Settings(next_edit_enabled=False, next_edit_debounce_ms=40)
