"""The seam between the engine service and whatever runs the model: the `Backend` protocol, and the
`BackendConfig` that says which backend to build. The in-process `Engine` is one backend; a vLLM deployment
reached over HTTP (`VllmBackend`) is the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ..job import Job, JobResult
    from ..prompt.layout import EncodedPrompt, PromptParts
    from .local.denoise import StepControl


class BackendKind(StrEnum):
    """Where the denoising runs."""

    TRANSFORMERS = "transformers"  # in this process, on this machine's device
    VLLM = "vllm"  # on a vLLM deployment serving DiffusionGemma, over HTTP


class BackendError(Exception):
    """A backend that cannot be built: unreachable servers, a wrong model, a missing tokenizer."""


class Backend(Protocol):
    """What the engine service needs from a model runner. Blocking and thread-safe: call it from worker
    threads, never on an event loop. Errors come back in `JobResult.error`, never as exceptions."""

    @property
    def has_random_weights(self) -> bool: ...

    @property
    def canvas_length(self) -> int: ...

    @property
    def max_prompt_tokens(self) -> int:
        """The longest prompt `complete` builds."""
        ...

    @property
    def chars_per_token(self) -> float:
        """Characters per prompt token on typical code (`prompt.budget.chars_per_token`)."""
        ...

    @property
    def eos_token_ids(self) -> frozenset[int]: ...

    @property
    def kernels(self) -> str:
        """Which kernels run the model, and why where a faster one does not (one line, for the status)."""
        ...

    def encode(self, parts: PromptParts, max_tokens: int = 2048) -> EncodedPrompt: ...

    def decode(self, token_ids: list[int]) -> str: ...

    @property
    def max_batch_rows(self) -> int:
        """The most canvases `complete_batch` denoises together (1: the backend runs jobs one at a time)."""
        ...

    def complete(
        self,
        parts: PromptParts,
        job: Job,
        control: StepControl | None = None,
        max_prompt_tokens: int = 2048,
        pin_healed: bool = False,
    ) -> JobResult:
        """Encode `parts`, run `job` on it, and say what the canvases re-create (`JobResult.healed`); with
        `pin_healed`, every canvas starts with those characters pinned."""
        ...

    def complete_batch(
        self,
        parts: Sequence[PromptParts],
        jobs: Sequence[Job],
        controls: Sequence[StepControl | None] | None = None,
        max_prompt_tokens: int = 2048,
        pin_healed: Sequence[bool] | None = None,
    ) -> list[JobResult]:
        """`complete` for several prompts, results in their order; each job's `StepControl.on_result` is called as
        soon as that job is done."""
        ...

    def run(self, job: Job, control: StepControl | None = None) -> JobResult: ...

    def run_batch(self, jobs: list[Job], controls: list[StepControl | None] | None = None) -> list[JobResult]:
        """`run` for several jobs, results in their order, with `on_result` as in `complete_batch`."""
        ...


@dataclass(frozen=True)
class BackendConfig:
    """Which backend to build and how to reach it."""

    kind: BackendKind = BackendKind.TRANSFORMERS
    # transformers: the checkpoint to load. vllm: where the served model's tokenizer (and config.json) can be
    # read locally; None asks the deployment which model it serves and looks for that.
    model: str | None = None
    device: str = "auto"
    dtype: str = "auto"
    fp8: bool = False  # transformers: fp8 expert weights (H100, RTX 40/50); see EngineOptions
    eager: bool = False  # transformers: the stock modules, no grouped kernels or CUDA graphs
    compile_layers: bool = False  # transformers: torch.compile the text layers around attention
    vllm_urls: tuple[str, ...] = ()
    vllm_token: str | None = None  # sent as `Authorization: Bearer …` (vllm serve --api-key)
    connect_timeout_s: float = 3.0
    request_timeout_s: float = 120.0  # a job without its own time budget gives up after this long
    retries: int = 3  # further attempts after a connection error, on the least busy reachable replica
    retry_backoff_s: float = 0.1  # doubles after each failed attempt
    health_interval_s: float = 5.0  # how often replicas that failed are probed again
    require_diffusion: bool = True  # refuse a deployment that does not serve DiffusionGemma
