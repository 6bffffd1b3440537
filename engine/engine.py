"""The in-process engine: one loaded checkpoint, jobs run one batch at a time under a lock.

Errors come back inside the `JobResult`; nothing here raises into a caller that serves an editor.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from dataclasses import replace

import torch

from .chat_prompt import DEFAULT_LAYOUT, encode_for, layout_for
from .checkpoint import LoadedModel, load_checkpoint
from .default_model import default_model_source
from .denoise import Denoiser, StepControl
from .engine_options import EngineOptions, apply_options
from .job import FinishReason, Job, JobResult, job_problem
from .prefix_cache import PrefixCache
from .prompt import EncodedPrompt, PromptParts, indentation_pins
from .prompt_budget import chars_per_token, prompt_token_limit

log = logging.getLogger(__name__)


class Engine:
    """Runs jobs on one checkpoint."""

    def __init__(self, loaded: LoadedModel, options: EngineOptions | None = None) -> None:
        self.loaded = loaded
        self.options = options or EngineOptions()
        graphs = apply_options(loaded.model, self.options)  # swaps kernels in place; graphs on a GPU only
        self.denoiser = Denoiser(loaded.model, loaded.params, PrefixCache(), graphs)
        self.lock = threading.Lock()

    @classmethod
    def load(
        cls,
        source: str | None = None,
        device: str = "auto",
        dtype: str = "auto",
        options: EngineOptions | None = None,
    ) -> Engine:
        """Load `source` (a directory or Hugging Face id), or the embedded default model when None."""
        return cls(load_checkpoint(source or str(default_model_source()), device=device, dtype=dtype), options)

    @property
    def has_random_weights(self) -> bool:
        return self.loaded.has_random_weights

    @property
    def canvas_length(self) -> int:
        """The canvas length the checkpoint was trained with."""
        return int(self.loaded.model.config.canvas_length)

    @property
    def max_prompt_tokens(self) -> int:
        """The longest prompt `complete` builds: 2,048 tokens, or the tokenizer's model_max_length when smaller."""
        return prompt_token_limit(self.loaded.tokenizer)

    @functools.cached_property
    def chars_per_token(self) -> float:
        """Characters per prompt token on typical code."""
        return chars_per_token(self.loaded.tokenizer)

    @property
    def eos_token_ids(self) -> frozenset[int]:
        return frozenset(self.denoiser.params.eos_token_ids)

    def encode(self, parts: PromptParts, max_tokens: int = 2048) -> EncodedPrompt:
        """The prompt for `parts` in this checkpoint's layout."""
        return encode_for(self.loaded.tokenizer, parts, max_tokens)

    def decode(self, token_ids: list[int]) -> str:
        text: str = self.loaded.tokenizer.decode(token_ids, skip_special_tokens=True)
        return text

    def complete(
        self,
        parts: PromptParts,
        job: Job,
        control: StepControl | None = None,
        max_prompt_tokens: int = 2048,
        pin_healed: bool = False,
    ) -> JobResult:
        """Encode `parts` in this checkpoint's layout, run `job` on it, and say what the canvases re-create.
        In the embedded model's layout, a cursor inside indentation keeps that indentation pinned at the canvas
        start. `pin_healed` pins all the characters token healing cut from the prefix at the start of every
        canvas, so each canvas re-creates them (a random-weight model never does on its own)."""
        tokenizer = self.loaded.tokenizer
        try:
            encoded = self.encode(parts, max_prompt_tokens)
            healed_ids = tokenizer(encoded.healed, add_special_tokens=False)["input_ids"]
        except Exception as err:
            return JobResult(finish_reason=FinishReason.ERROR, error=f"cannot encode the prompt: {err}")
        if pin_healed:
            pins = tuple(enumerate(healed_ids[: max(job.canvas_length - 1, 0)]))
        elif not job.pins and layout_for(tokenizer) is DEFAULT_LAYOUT:
            pins = tuple(p for p in indentation_pins(tokenizer, encoded.healed) if p[0] < job.canvas_length - 1)
        else:
            pins = job.pins
        result = self.run(replace(job, prompt_ids=encoded.ids, pins=pins), control)
        return replace(result, healed=encoded.healed)

    def run(self, job: Job, control: StepControl | None = None) -> JobResult:
        """Denoise `job`; a bad job or an out-of-memory error comes back as a result with `error` set."""
        problem = self.validate(job)
        if problem is not None:
            return JobResult(finish_reason=FinishReason.ERROR, error=problem)
        queued = time.perf_counter()
        with self.lock:
            queue_ms = (time.perf_counter() - queued) * 1000
            try:
                result = self.denoiser.run(job, control, self.decode)
            except torch.OutOfMemoryError:
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                return JobResult(
                    finish_reason=FinishReason.ERROR,
                    error="out of GPU memory: use fewer alternatives, a shorter canvas or prompt",
                )
            except Exception as err:  # an engine bug must not take its callers down
                log.exception("job failed")
                return JobResult(finish_reason=FinishReason.ERROR, error=f"engine error: {type(err).__name__}: {err}")
        return replace(result, timings=replace(result.timings, queue_ms=queue_ms))

    def validate(self, job: Job) -> str | None:
        """Why `job` cannot run on this checkpoint, or None."""
        positions = int(self.loaded.model.config.text_config.max_position_embeddings)
        return job_problem(job, self.denoiser.vocab_size, positions)
