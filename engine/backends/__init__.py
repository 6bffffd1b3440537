"""Model runners behind the engine service: the in-process transformers `Engine`, or a vLLM deployment.

`create_backend` is the one place the service builds its backend; importing this package loads neither torch
nor an HTTP client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .backend import Backend, BackendConfig, BackendError, BackendKind

if TYPE_CHECKING:
    from .vllm.backend import VllmBackend


def create_backend(config: BackendConfig) -> Backend:
    """The backend `config` asks for, ready to run jobs; BackendError (or the engine's own load errors) when it
    cannot be built."""
    if config.kind is BackendKind.VLLM:
        from .vllm.backend import VllmBackend

        return VllmBackend.connect(config)
    from .local.engine import Engine
    from .local.options import EngineOptions

    options = EngineOptions(eager=config.eager, fp8=config.fp8, compile_layers=config.compile_layers)
    return Engine.load(config.model, device=config.device, dtype=config.dtype, options=options)


def __getattr__(name: str) -> Any:
    if name == "VllmBackend":
        from .vllm.backend import VllmBackend

        return VllmBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Backend", "BackendConfig", "BackendError", "BackendKind", "VllmBackend", "create_backend"]
