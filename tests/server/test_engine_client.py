"""Which engine process a spec names (its socket key and the command line that starts it, for both backends), and
what the client reads from the engine's messages: the prompt limits of its status, the token spans of a reply."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from diffusion_copilot.engine.protocol import EngineError, RunReply, engine_status, run_reply
from diffusion_copilot.server.cli.main import build_parser
from diffusion_copilot.server.completion.inline import context_budget
from diffusion_copilot.server.context.budget import ContextBudget
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
    team = "DIFFUSION_COPILOT_TEAM_TOKEN"
    monkeypatch.setenv(team, "s3cret")
    monkeypatch.setenv(VLLM_TOKEN_ENV, "stale")
    env = engine_environment(EngineSpec(backend="vllm", vllm_urls=URLS, vllm_token_env=team))
    assert env[VLLM_TOKEN_ENV] == "s3cret"
    assert "s3cret" not in engine_command(VLLM, Path("/r"))
    monkeypatch.delenv(team)
    env = engine_environment(EngineSpec(backend="vllm", vllm_urls=URLS, vllm_token_env=team))
    assert VLLM_TOKEN_ENV not in env  # an unset variable gives no token, not a stale one
    assert engine_environment(VLLM)[VLLM_TOKEN_ENV] == "stale"  # the default variable is read as it is


def test_the_status_carries_the_prompt_limits_when_the_engine_has_them() -> None:
    ready = {"state": "ready", "message": "ready", "model": "m", "has_random_weights": False,
             "max_prompt_tokens": 320, "chars_per_token": 3.23}
    status = engine_status(ready)
    assert (status.max_prompt_tokens, status.chars_per_token) == (320, 3.23)
    for missing in ({"max_prompt_tokens": None, "chars_per_token": None}, {"max_prompt_tokens": True},
                    {"max_prompt_tokens": -5, "chars_per_token": "3"}):
        odd = engine_status({**ready, **missing})
        assert odd.max_prompt_tokens is None and odd.chars_per_token in (None, 3.23)
    old = engine_status({k: v for k, v in ready.items() if k not in ("max_prompt_tokens", "chars_per_token")})
    assert context_budget(old.max_prompt_tokens, old.chars_per_token) == ContextBudget()  # an older engine
    assert context_budget(2048, 4.0) == ContextBudget()
    small = context_budget(status.max_prompt_tokens, status.chars_per_token)
    assert small.prefix_chars < ContextBudget().prefix_chars // 5


def test_a_reply_maps_each_tokens_confidence_onto_its_text() -> None:
    canvas = {"text": "    return x\n", "completion": "return x\n", "confidence": [1.0, 0.9, 0.1, 0.5],
              "token_chars": [4, 6, 2, 1], "steps": 3, "finish_reason": "converged", "hit_eos": True}
    timings = {"queue_ms": 0, "encode_ms": 1, "prefill_ms": 2, "total_ms": 3, "steps": 3}
    reply = run_reply({"canvases": [canvas], "healed": "    ", "finish_reason": "converged", "timings": timings})
    assert isinstance(reply, RunReply)
    assert reply.canvases[0].token_texts == ("    ", "return", " x", "\n")
    for odd in ({"token_chars": [4, 6, 2]}, {"token_chars": [4, 6, 2, 2]}, {"token_chars": [4, 8, -1, 2]}, {}):
        raw = {**{k: v for k, v in canvas.items() if k != "token_chars"}, **odd}
        parsed = run_reply({"canvases": [raw], "healed": "    ", "finish_reason": "converged", "timings": timings})
        assert isinstance(parsed, RunReply) and parsed.canvases[0].token_texts is None  # no confidence cut
    bad = run_reply({"canvases": [{**canvas, "token_chars": ["x"]}], "healed": "", "finish_reason": "converged",
                     "timings": timings})
    assert isinstance(bad, EngineError)


def test_a_token_is_read_only_from_a_variable_of_the_project(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOME_SECRET", "not-for-vllm")
    monkeypatch.setenv(VLLM_TOKEN_ENV, "stale")
    env = engine_environment(EngineSpec(backend="vllm", vllm_urls=URLS, vllm_token_env="SOME_SECRET"))
    assert VLLM_TOKEN_ENV not in env  # no token at all, neither the named variable nor a stale one
