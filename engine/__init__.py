"""The DiffusionGemma engine: checkpoints, the denoising loop and the jobs it runs. Knows nothing about editors.

The job and prompt types import without torch, so front ends that only talk to an engine process start fast;
the names that need torch load on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .job import Canvas, FinishReason, Job, JobResult, Timings
from .prompt.detokenize import token_texts
from .prompt.layout import EncodedPrompt, PromptParts, encode_prompt, strip_healed

if TYPE_CHECKING:
    from .checkpoint import CheckpointError, LoadedModel, load_checkpoint
    from .default_model import default_model_source
    from .denoise import StepControl
    from .engine import Engine
    from .engine_options import EngineOptions
    from .sampler import SamplerParams

_LAZY = {
    "CheckpointError": "checkpoint",
    "LoadedModel": "checkpoint",
    "load_checkpoint": "checkpoint",
    "default_model_source": "default_model",
    "StepControl": "denoise",
    "Engine": "engine",
    "EngineOptions": "engine_options",
    "SamplerParams": "sampler",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)


__all__ = [
    "Canvas",
    "CheckpointError",
    "EncodedPrompt",
    "Engine",
    "EngineOptions",
    "FinishReason",
    "Job",
    "JobResult",
    "LoadedModel",
    "PromptParts",
    "SamplerParams",
    "StepControl",
    "Timings",
    "default_model_source",
    "encode_prompt",
    "load_checkpoint",
    "strip_healed",
    "token_texts",
]
