"""Which engine process a spec names: its socket key and the command line that starts it, for both backends."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from diffusion_copilot.server.cli import build_parser
from diffusion_copilot.server.engine_client import (
    VLLM_TOKEN_ENV,
    EngineSpec,
    engine_command,
    engine_environment,
    engine_paths,
)

URLS = ("http://gpu-a:8000", "https://gpu-b.example:8000")
VLLM = EngineSpec(model="/models/tokenizer", device="cpu", backend="vllm", vllm_urls=URLS)


def test_the_vllm_backend_is_on_the_command_line() -> None:
    command = engine_command(VLLM, Path("/run/dc"))
    assert command[-6:] == ["--backend", "vllm", "--vllm-url", URLS[0], "--vllm-url", URLS[1]]
    assert command[command.index("--model") + 1] == "/models/tokenizer"
    assert not any(arg.startswith("--vllm-url") for arg in engine_command(EngineSpec(vllm_urls=URLS), Path("/r")))


def test_the_command_line_parses_back_to_the_same_engine(tmp_path: Path) -> None:
    """The engine process computes its socket from its arguments: it must be the one the client looks for."""
    args = build_parser().parse_args(engine_command(VLLM, tmp_path)[3:])  # after `python -m ...cli`
    spec = EngineSpec(model=args.model, device=args.device, dtype=args.dtype, backend=args.backend,
                      vllm_urls=tuple(args.vllm_url))
    assert spec.key == VLLM.key and engine_paths(spec, tmp_path) == engine_paths(VLLM, tmp_path)


def test_the_key_tells_backends_and_deployments_apart() -> None:
    local = EngineSpec(model="/models/tokenizer", device="cpu")
    keys = {local.key, VLLM.key, EngineSpec(model="/models/tokenizer", device="cpu", backend="vllm",
                                            vllm_urls=URLS[:1]).key}
    assert len(keys) == 3
    assert VLLM.key == EngineSpec(model="/models/tokenizer", device="cpu", backend="vllm", vllm_urls=URLS,
                                  vllm_token_env="OTHER").key  # the token is not part of it


def test_the_default_key_is_unchanged() -> None:
    """Engines already running for the in-process backend keep their sockets."""
    expected = hashlib.sha256(json.dumps(["", "auto", "auto"]).encode()).hexdigest()[:12]
    assert EngineSpec().key == expected


def test_the_token_moves_to_the_variable_the_engine_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEAM_VLLM_TOKEN", "s3cret")
    monkeypatch.setenv(VLLM_TOKEN_ENV, "stale")
    env = engine_environment(EngineSpec(backend="vllm", vllm_urls=URLS, vllm_token_env="TEAM_VLLM_TOKEN"))
    assert env[VLLM_TOKEN_ENV] == "s3cret"
    assert "s3cret" not in engine_command(VLLM, Path("/r"))
    monkeypatch.delenv("TEAM_VLLM_TOKEN")
    env = engine_environment(EngineSpec(backend="vllm", vllm_urls=URLS, vllm_token_env="TEAM_VLLM_TOKEN"))
    assert VLLM_TOKEN_ENV not in env  # an unset variable gives no token, not a stale one
    assert engine_environment(VLLM)[VLLM_TOKEN_ENV] == "stale"  # the default variable is read as it is
