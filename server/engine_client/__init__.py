"""The language server's side of the engine socket: `client.py` (the asyncio connection) and `spec.py` (which
engine process, its paths, command line and environment)."""

from .client import EngineClient
from .spec import (
    RUNTIME_DIR_ENV,
    TOKEN_ENV_PREFIX,
    VLLM_TOKEN_ENV,
    EngineSpec,
    engine_command,
    engine_environment,
    engine_paths,
    private_runtime_dir,
    runtime_dir,
)

__all__ = [
    "RUNTIME_DIR_ENV",
    "TOKEN_ENV_PREFIX",
    "VLLM_TOKEN_ENV",
    "EngineClient",
    "EngineSpec",
    "engine_command",
    "engine_environment",
    "engine_paths",
    "private_runtime_dir",
    "runtime_dir",
]
