"""The in-process engine: one loaded checkpoint, jobs run one batch at a time under a lock (a batch: one job and
its alternatives, or several jobs' canvases denoised together by `Denoiser.run_batch`).

Errors come back inside the `JobResult`; nothing here raises into a caller that serves an editor.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

import torch

from ...job import FinishReason, Job, JobResult, job_problem
from ...kernels.report import kernel_report
from ...prompt.budget import chars_per_token, prompt_token_limit
from ...prompt.chat import DEFAULT_LAYOUT, encode_for, layout_for
from ...prompt.edit import EditWindow, encode_edit
from ...prompt.layout import EncodedPrompt, PromptParts, healed_pins, indentation_pins
from ...weights.checkpoint import LoadedModel, load_checkpoint
from ...weights.default_model import default_model_source
from .denoise import Denoiser, StepControl, can_batch
from .options import EngineOptions, apply_options, prefills_together
from .prefix_cache import PrefixCache

log = logging.getLogger(__name__)


class Engine:
    """Runs jobs on one checkpoint."""

    def __init__(self, loaded: LoadedModel, options: EngineOptions | None = None) -> None:
        self.loaded = loaded
        self.options = options or EngineOptions()
        graphs = apply_options(loaded.model, self.options)  # swaps kernels in place; graphs on a GPU only
        self.kernel_report = kernel_report(loaded.model, graphs is not None)
        log.info("kernels: %s", self.kernel_report.line())
        together = prefills_together(loaded.model, self.options)
        self.denoiser = Denoiser(loaded.model, loaded.params, PrefixCache(), graphs, together)
        self.lock = threading.Lock()

    @classmethod
    def load(
        cls,
        source: str | None = None,
        device: str = "auto",
        dtype: str = "auto",
        options: EngineOptions | None = None,
        weights: str = "auto",
    ) -> Engine:
        """Load `source` (a directory or Hugging Face id), or the embedded default model when None."""
        loaded = load_checkpoint(source or str(default_model_source()), device=device, dtype=dtype, weights=weights)
        return cls(loaded, options)

    @property
    def weights_note(self) -> str:
        """The experts' weight format and why, with the resident GB of each format, for the engine's status."""
        choice = self.loaded.weights
        resident = ", ".join(f"{fmt} {n / 1e9:.2f} GB" for fmt, n in sorted(self.loaded.resident.items()))
        return f"weights {choice.reason if choice else 'as loaded'}; resident {resident}"

    @property
    def has_random_weights(self) -> bool:
        return self.loaded.has_random_weights

    @property
    def gate(self) -> str | None:
        """The text of the checkpoint's gate.json, for the engine's status; None when it has none."""
        return self.loaded.gate

    @property
    def kernels(self) -> str:
        return self.kernel_report.line()

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
        return self.complete_batch([parts], [job], [control], max_prompt_tokens, [pin_healed])[0]

    def complete_batch(
        self,
        parts: Sequence[PromptParts],
        jobs: Sequence[Job],
        controls: Sequence[StepControl | None] | None = None,
        max_prompt_tokens: int = 2048,
        pin_healed: Sequence[bool] | None = None,
        edits: Sequence[EditWindow | None] | None = None,
    ) -> list[JobResult]:
        """`complete` for several prompts at once, denoised together where they can be (`run_batch`); results
        in the jobs' order, a prompt that cannot be encoded as its own error result. A job with an `EditWindow`
        is an edit job: its canvas starts from the window (`prompt.edit`) and its result is the rewritten window."""
        controls = list(controls) if controls is not None else [None] * len(jobs)
        pin_healed = list(pin_healed) if pin_healed is not None else [False] * len(jobs)
        edits = list(edits) if edits is not None else [None] * len(jobs)
        results: list[JobResult | None] = [None] * len(jobs)
        ready: list[tuple[int, Job, str]] = []
        for index, (part, job, pin, edit) in enumerate(zip(parts, jobs, pin_healed, edits, strict=True)):
            prepared = self._prepare(part, job, max_prompt_tokens, pin) if edit is None else \
                self._prepare_edit(part, job, max_prompt_tokens, edit)
            if isinstance(prepared, JobResult):
                results[index] = prepared
            else:
                ready.append((index, *prepared))
        ready_controls = [_then(controls[i], functools.partial(replace, healed=healed)) for i, _, healed in ready]
        done = self.run_batch([job for _, job, _ in ready], ready_controls)
        for (index, _, healed), result in zip(ready, done, strict=True):
            results[index] = replace(result, healed=healed)
        return [r if r is not None else JobResult(finish_reason=FinishReason.ERROR, error="not run") for r in results]

    def _prepare(
        self, parts: PromptParts, job: Job, max_prompt_tokens: int, pin_healed: bool
    ) -> tuple[Job, str] | JobResult:
        """(`job` on the encoded prompt with its pins, the healed text), or an error result when the prompt
        cannot be encoded."""
        tokenizer = self.loaded.tokenizer
        try:
            encoded = self.encode(parts, max_prompt_tokens)
            healed = healed_pins(tokenizer, encoded.healed, job.canvas_length) if pin_healed else ()
        except Exception as err:
            return JobResult(finish_reason=FinishReason.ERROR, error=f"cannot encode the prompt: {err}")
        if pin_healed:
            pins = healed
        elif not job.pins and layout_for(tokenizer) is DEFAULT_LAYOUT:
            pins = tuple(p for p in indentation_pins(tokenizer, encoded.healed) if p[0] < job.canvas_length - 1)
        else:
            pins = job.pins
        return replace(job, prompt_ids=encoded.ids, pins=pins), encoded.healed

    def _prepare_edit(
        self, parts: PromptParts, job: Job, max_prompt_tokens: int, edit: EditWindow
    ) -> tuple[Job, str] | JobResult:
        """(`job` as an edit job of `edit`: prompt, seeded canvas and pins, the healed text), or an error result."""
        try:
            encoded = encode_edit(self.loaded.tokenizer, parts, edit, job.canvas_length, self.denoiser.vocab_size,
                                  job.seed, max_prompt_tokens)
        except Exception as err:
            return JobResult(finish_reason=FinishReason.ERROR, error=f"cannot build the edit job: {err}")
        return replace(job, prompt_ids=encoded.ids, seed_canvas=encoded.seed_canvas, pins=encoded.pins), encoded.healed

    def run(self, job: Job, control: StepControl | None = None) -> JobResult:
        """Denoise `job`; a bad job or an out-of-memory error comes back as a result with `error` set."""
        return self.run_batch([job], [control])[0]

    def run_batch(self, jobs: list[Job], controls: list[StepControl | None] | None = None) -> list[JobResult]:
        """Denoise `jobs` together where they can share decoder forwards (one canvas each, same canvas length, at
        most `max_batch_rows` rows); the rest run one by one. Results come in the jobs' order, errors as results."""
        controls = controls if controls is not None else [None] * len(jobs)
        results: list[JobResult | None] = [None] * len(jobs)
        groups: dict[int, list[int]] = {}
        alone: list[list[int]] = []
        for index, job in enumerate(jobs):
            problem = self.validate(job)
            if problem is not None:
                results[index] = JobResult(finish_reason=FinishReason.ERROR, error=problem)
            elif can_batch(job):
                groups.setdefault(job.canvas_length, []).append(index)
            else:
                alone.append([index])
        chunks = alone + [
            chunk
            for indexes in groups.values()
            for chunk in _chunks(indexes, [jobs[i].alternatives for i in indexes], self.max_batch_rows)
        ]
        queued = time.perf_counter()
        with self.lock:
            for chunk in chunks:
                queue_ms = (time.perf_counter() - queued) * 1000

                def queue_time(result: JobResult, ms: float = queue_ms) -> JobResult:
                    return replace(result, timings=replace(result.timings, queue_ms=ms))

                done = self._run_chunk([jobs[i] for i in chunk], [_then(controls[i], queue_time) for i in chunk])
                for i, result in zip(chunk, done, strict=True):
                    results[i] = queue_time(result)
        return [r if r is not None else JobResult(finish_reason=FinishReason.ERROR, error="not run") for r in results]

    @property
    def max_batch_rows(self) -> int:
        """The most canvases one batched forward denoises (the CUDA-graph batch bucket)."""
        return self.options.buckets.max_batch

    def _run_chunk(self, jobs: list[Job], controls: list[StepControl | None]) -> list[JobResult]:
        """`Denoiser.run_batch`, with out-of-memory and engine errors as results for every job."""
        try:
            return self.denoiser.run_batch(jobs, controls, self.decode)
        except torch.OutOfMemoryError:
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            error = (
                "out of GPU memory: use fewer alternatives, a shorter canvas or prompt"
                if len(jobs) == 1
                else "out of GPU memory: batch fewer jobs, or use shorter canvases or prompts"
            )
        except Exception as err:  # an engine bug must not take its callers down
            log.exception("batch failed")
            error = f"engine error: {type(err).__name__}: {err}"
        return [JobResult(finish_reason=FinishReason.ERROR, error=error) for _ in jobs]

    def validate(self, job: Job) -> str | None:
        """Why `job` cannot run on this checkpoint, or None."""
        positions = int(self.loaded.model.config.text_config.max_position_embeddings)
        return job_problem(job, self.denoiser.vocab_size, positions)


def _chunks(indexes: list[int], rows: list[int], max_rows: int) -> list[list[int]]:
    """Split `indexes` in order into runs of at most `max_rows` rows (a job bigger than that runs alone)."""
    chunks: list[list[int]] = []
    used = max_rows
    for index, count in zip(indexes, rows, strict=True):
        if used + count > max_rows:
            chunks.append([])
            used = 0
        chunks[-1].append(index)
        used += count
    return chunks


def _then(control: StepControl | None, change: Callable[[JobResult], JobResult]) -> StepControl | None:
    """`control`, with its early results passed through `change` (what the caller adds to the result)."""
    if control is None or control.on_result is None:
        return control
    report = control.on_result
    return replace(control, on_result=lambda result: report(change(result)))
