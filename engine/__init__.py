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
    from .backends.local.denoise import StepControl
    from .backends.local.engine import Engine
    from .backends.local.options import EngineOptions
    from .backends.local.sampler import SamplerParams
    from .weights.checkpoint import CheckpointError, LoadedModel, load_checkpoint
    from .weights.default_model import default_model_source

_LAZY = {
    "CheckpointError": "weights.checkpoint",
    "LoadedModel": "weights.checkpoint",
    "load_checkpoint": "weights.checkpoint",
    "default_model_source": "weights.default_model",
    "StepControl": "backends.local.denoise",
    "Engine": "backends.local.engine",
    "EngineOptions": "backends.local.options",
    "SamplerParams": "backends.local.sampler",
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
