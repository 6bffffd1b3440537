"""Which engine process a spec names and how it is started: its socket, lock and log paths in the runtime folder,
its command line and its environment. Plain functions over `EngineSpec`; nothing here connects or spawns.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from diffusion_copilot.engine.user_dirs import cache_dir, private_dir

log = logging.getLogger(__name__)
RUNTIME_DIR_ENV = "DIFFUSION_COPILOT_RUNTIME_DIR"
VLLM_TOKEN_ENV = "DIFFUSION_COPILOT_VLLM_TOKEN"  # what `diffusion-copilot engine` reads --vllm-token from
TOKEN_ENV_PREFIX = "DIFFUSION_COPILOT_"  # the only variables a token is read from: no other secret can leave


@dataclass(frozen=True)
class EngineSpec:
    """Which engine process to use: one per (model, device, dtype, backend, vLLM URLs) on the machine."""

    model: str | None = None
    device: str = "auto"
    dtype: str = "auto"
    command: tuple[str, ...] = ()  # the command up to and including `engine`; () = this Python
    backend: str = "transformers"  # or "vllm": the engine hands jobs to the servers of `vllm_urls`
    vllm_urls: tuple[str, ...] = ()
    vllm_token_env: str = VLLM_TOKEN_ENV  # the variable of this process holding the servers' token

    @property
    def key(self) -> str:
        """Names the engine's socket; the token is not part of it (one deployment, one engine)."""
        fields: list[Any] = [self.model or "", self.device, self.dtype]
        if self.backend != "transformers":
            fields += [self.backend, list(self.vllm_urls)]
        return hashlib.sha256(json.dumps(fields).encode()).hexdigest()[:12]


def runtime_dir() -> Path:
    """Where engine sockets live: $DIFFUSION_COPILOT_RUNTIME_DIR, $XDG_RUNTIME_DIR/diffusion-copilot, or the
    cache directory."""
    if explicit := os.environ.get(RUNTIME_DIR_ENV):
        return Path(explicit)
    if xdg := os.environ.get("XDG_RUNTIME_DIR"):
        return Path(xdg) / "diffusion-copilot"
    cache: Path = cache_dir()
    return cache / "run"


def private_runtime_dir(directory: Path) -> Path:
    """`directory` created owner-only (0700), with the project's cache folder above it when it lies there."""
    private: Path = private_dir(directory, top=cache_dir())
    return private


def engine_paths(spec: EngineSpec, directory: Path | None = None) -> tuple[Path, Path, Path]:
    """(socket, lock file, log file) of the engine for `spec`."""
    base = (directory or runtime_dir()) / f"engine-{spec.key}"
    return base.with_suffix(".sock"), base.with_suffix(".lock"), base.with_suffix(".log")


def engine_command(spec: EngineSpec, directory: Path) -> list[str]:
    """The command line that starts the engine process for `spec`."""
    base = list(spec.command) or [sys.executable, "-m", "diffusion_copilot.server.cli", "engine"]
    model = ["--model", spec.model] if spec.model else []
    backend = ["--backend", spec.backend] if spec.backend != "transformers" else []
    urls = [arg for url in spec.vllm_urls for arg in ("--vllm-url", url)] if spec.backend == "vllm" else []
    return [*base, *model, "--device", spec.device, "--dtype", spec.dtype, "--runtime-dir", str(directory),
            *backend, *urls]


def engine_environment(spec: EngineSpec) -> dict[str, str]:
    """The environment of the engine process: this one's, with the vLLM token moved from `vllm_token_env` (a
    variable named DIFFUSION_COPILOT_*, else no token) to the variable the engine reads it from (never on the
    command line, where `ps` shows it)."""
    env = dict(os.environ)
    if spec.backend == "vllm" and spec.vllm_token_env != VLLM_TOKEN_ENV:
        env.pop(VLLM_TOKEN_ENV, None)
        if not spec.vllm_token_env.startswith(TOKEN_ENV_PREFIX):
            log.warning("not reading the vLLM token from %s: only variables named %s* are read",
                        spec.vllm_token_env, TOKEN_ENV_PREFIX)
        elif token := os.environ.get(spec.vllm_token_env):
            env[VLLM_TOKEN_ENV] = token
    return env

