"""The `vllm` backend: jobs run on a vLLM deployment serving DiffusionGemma, reached over its OpenAI-compatible
HTTP API (`/v1/completions` with diffusion `vllm_xargs`, streamed).

Requests run on this backend's own event loop (one thread); `run` blocks the calling worker thread like the
in-process engine does. Cancelling a job, or its time budget running out, closes the stream, which makes vLLM
abort the request. Connection errors are retried on the least busy other replica with exponential back-off.
Prompts are encoded here with the served model's tokenizer, so the deployment sees token ids.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

from ...job import FinishReason, Job, JobResult, Timings
from ...prompt.budget import chars_per_token, prompt_token_limit
from ...prompt.layout import EncodedPrompt, PromptParts, encode_prompt, healed_pins
from ..backend import BackendConfig, BackendError
from .replicas import Replica, ReplicaSet, ReplicaState
from .request import StreamedCompletion, completion_body, server_error_text, sse_data, validation_error
from .served_model import ServedModel, find_served_model, load_model_files

if TYPE_CHECKING:
    from ..local.denoise import StepControl

log = logging.getLogger(__name__)
T = TypeVar("T")
POLL_S = 0.005  # how often a running job looks at its cancel flag and deadline
RETRY_STATUS = frozenset({502, 503, 504})  # a proxy or a server that is starting or draining


class _Retryable(Exception):
    """The replica could not be reached or is not ready: another attempt may succeed."""


class _Refused(Exception):
    """The server answered with an error that another attempt would get again."""


@dataclass
class _Clock:
    started: float
    first_chunk: float | None = None


class VllmBackend:
    """Runs jobs on one or more vLLM replicas serving the same DiffusionGemma model."""

    def __init__(self, config: BackendConfig) -> None:
        self.config = config
        self.replicas = ReplicaSet(config.vllm_urls, config.retry_backoff_s)
        self.headers = {"Authorization": f"Bearer {config.vllm_token}"} if config.vllm_token else {}
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="vllm-backend", daemon=True)
        self.thread.start()
        self.client: httpx.AsyncClient = self._call(self._make_client())
        self.health_task: asyncio.Task[None] | None = None
        self.served: ServedModel | None = None
        self.tokenizer: Any = None
        self.eos_ids: frozenset[int] = frozenset()
        self.vocab_size = 0
        self.trained_canvas_length = 256

    @classmethod
    def connect(cls, config: BackendConfig) -> VllmBackend:
        """A backend for the deployment at `config.vllm_urls`, after checking that it is reachable and serves
        DiffusionGemma, and loading its tokenizer; BackendError with the reason otherwise."""
        backend = cls(config)
        try:
            backend.served = backend._call(backend._discover())
            files = load_model_files(backend.served, config.model, config.require_diffusion)
        except BaseException:
            backend.close()
            raise
        backend.tokenizer, backend.eos_ids, backend.vocab_size = files.tokenizer, files.eos_ids, files.vocab_size
        backend.trained_canvas_length = files.canvas_length or backend.trained_canvas_length
        backend.health_task = backend._call(backend._start_health_checks())
        return backend

    # --- the Backend protocol ---

    @property
    def has_random_weights(self) -> bool:
        return False  # a deployment's weights are its own business; vLLM does not say

    @property
    def canvas_length(self) -> int:
        return self.trained_canvas_length

    @property
    def kernels(self) -> str:
        return "the vLLM deployment's own"

    @property
    def max_prompt_tokens(self) -> int:
        return prompt_token_limit(self.tokenizer)

    @functools.cached_property
    def chars_per_token(self) -> float:
        return chars_per_token(self.tokenizer)

    @property
    def eos_token_ids(self) -> frozenset[int]:
        return self.eos_ids

    def encode(self, parts: PromptParts, max_tokens: int = 2048) -> EncodedPrompt:
        return encode_prompt(self.tokenizer, parts, max_tokens)

    def decode(self, token_ids: list[int]) -> str:
        text: str = self.tokenizer.decode(token_ids, skip_special_tokens=True)
        return text

    @property
    def max_batch_rows(self) -> int:
        return 1  # each job is its own request; the deployment batches them

    def complete(
        self,
        parts: PromptParts,
        job: Job,
        control: StepControl | None = None,
        max_prompt_tokens: int = 2048,
        pin_healed: bool = False,
    ) -> JobResult:
        """Encode `parts` with the served model's tokenizer, run `job` on it, and say what canvases re-create."""
        try:
            encoded = self.encode(parts, max_prompt_tokens)
            pins = healed_pins(self.tokenizer, encoded.healed, job.canvas_length) if pin_healed else job.pins
        except Exception as err:
            return JobResult(finish_reason=FinishReason.ERROR, error=f"cannot encode the prompt: {err}")
        result = self.run(replace(job, prompt_ids=encoded.ids, pins=pins), control)
        return replace(result, healed=encoded.healed)

    def complete_batch(
        self,
        parts: Sequence[PromptParts],
        jobs: Sequence[Job],
        controls: Sequence[StepControl | None] | None = None,
        max_prompt_tokens: int = 2048,
        pin_healed: Sequence[bool] | None = None,
    ) -> list[JobResult]:
        """`complete` for each prompt in turn."""
        controls = list(controls) if controls is not None else [None] * len(jobs)
        pin_healed = list(pin_healed) if pin_healed is not None else [False] * len(jobs)
        return [
            _reported(self.complete(part, job, control, max_prompt_tokens, pin), control)
            for part, job, control, pin in zip(parts, jobs, controls, pin_healed, strict=True)
        ]

    def run(self, job: Job, control: StepControl | None = None) -> JobResult:
        """Run `job` on the least busy replica; blocks until it ends, is cancelled or runs out of time."""
        problem = validation_error(job, self.vocab_size, None)
        if problem is not None:
            return JobResult(finish_reason=FinishReason.ERROR, error=problem)
        try:
            return self._call(self._run(job, control))
        except Exception as err:  # a backend bug must not take the service down
            log.exception("vllm job failed")
            return JobResult(finish_reason=FinishReason.ERROR, error=f"vllm backend: {type(err).__name__}: {err}")

    def run_batch(self, jobs: list[Job], controls: list[StepControl | None] | None = None) -> list[JobResult]:
        """`run` for each job in turn."""
        controls = controls if controls is not None else [None] * len(jobs)
        return [_reported(self.run(job, control), control) for job, control in zip(jobs, controls, strict=True)]

    # --- beyond the protocol ---

    def replica_states(self) -> tuple[ReplicaState, ...]:
        return self._call(self._states())

    def check_health(self) -> tuple[ReplicaState, ...]:
        """Probe every replica now; the states afterwards."""
        return self._call(self._probe_all())

    def close(self) -> None:
        """Stop the health checks, close the connections and the event loop's thread."""
        if not self.loop.is_running():
            return
        with contextlib.suppress(Exception):
            self._call(self._shutdown())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        if not self.thread.is_alive():
            self.loop.close()

    # --- on the event loop ---

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    async def _make_client(self) -> httpx.AsyncClient:
        timeout = httpx.Timeout(None, connect=self.config.connect_timeout_s)  # reads wait: the job has a deadline
        limits = httpx.Limits(max_connections=256, max_keepalive_connections=32)
        return httpx.AsyncClient(timeout=timeout, limits=limits, headers=self.headers)

    async def _states(self) -> tuple[ReplicaState, ...]:
        return self.replicas.states()

    async def _shutdown(self) -> None:
        if self.health_task is not None:
            self.health_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.health_task
        await self.client.aclose()

    async def _discover(self) -> ServedModel:
        """What the replicas serve; all reachable ones must agree, and at least one must be reachable."""
        found: dict[str, ServedModel] = {}
        errors: list[str] = []
        for replica in self.replicas.replicas:
            try:
                response = await self.client.get(f"{replica.url}/v1/models", timeout=self.config.connect_timeout_s)
            except httpx.HTTPError as err:
                errors.append(f"{replica.url}: {_describe(err)}")
                self.replicas.mark_failed(replica, _describe(err), time.monotonic())
                continue
            if response.status_code == 401:
                raise BackendError(
                    f"{replica.url} refused the token (HTTP 401): pass the server's --api-key as --vllm-token"
                )
            if response.status_code != 200:
                text = server_error_text(response.status_code, response.content)
                raise BackendError(f"{replica.url}/v1/models: {text}")
            found[replica.url] = find_served_model(response.json(), self.config.model, replica.url)
        if not found:
            raise BackendError("no vLLM server reachable: " + "; ".join(errors))
        names = {m.name for m in found.values()}
        if len(names) > 1:
            raise BackendError(
                "the vLLM replicas serve different models: "
                + ", ".join(f"{u} serves {m.name}" for u, m in found.items())
            )
        for error in errors:
            log.warning("vLLM replica unreachable for now: %s", error)
        return next(iter(found.values()))

    async def _start_health_checks(self) -> asyncio.Task[None]:
        return asyncio.create_task(self._health_loop())

    async def _health_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.health_interval_s)
            await self._probe_all()

    async def _probe_all(self) -> tuple[ReplicaState, ...]:
        await asyncio.gather(*(self._probe(r) for r in self.replicas.replicas))
        return self.replicas.states()

    async def _probe(self, replica: Replica) -> None:
        try:
            response = await self.client.get(f"{replica.url}/health", timeout=self.config.connect_timeout_s)
        except httpx.HTTPError as err:
            self.replicas.mark_failed(replica, _describe(err), time.monotonic())
            return
        if response.status_code == 200:
            self.replicas.mark_ok(replica)
        else:
            self.replicas.mark_failed(replica, f"/health: HTTP {response.status_code}", time.monotonic())

    async def _run(self, job: Job, control: StepControl | None) -> JobResult:
        assert self.served is not None
        clock = _Clock(time.perf_counter())
        has_budget = job.time_budget_s is not None
        budget_s = job.time_budget_s if job.time_budget_s is not None else self.config.request_timeout_s
        deadline = clock.started + budget_s
        stream = StreamedCompletion(job.alternatives, self.eos_ids)
        body = completion_body(job, self.served.name, self.vocab_size)
        task = asyncio.create_task(self._attempts(body, stream, control, clock))
        is_cancelled = control.is_cancelled if control is not None else None
        reason = FinishReason.CONVERGED
        while not task.done():
            if is_cancelled is not None and is_cancelled():
                reason = FinishReason.CANCELLED
            elif time.perf_counter() >= deadline:
                reason = FinishReason.DEADLINE
            else:
                wait_s = POLL_S if is_cancelled is not None else deadline - time.perf_counter()
                await asyncio.wait({task}, timeout=max(wait_s, 0.0))
                continue
            task.cancel()  # closes the stream: vLLM aborts the request
            break
        error: str | None = None
        with contextlib.suppress(asyncio.CancelledError):
            error = await task
        if reason is FinishReason.DEADLINE and not has_budget:
            error = f"no answer from vLLM within {budget_s:g} s"
        total_ms = (time.perf_counter() - clock.started) * 1000
        # prefill_ms: until the first tokens streamed in (queueing, prefill and the first canvas, on the server)
        first_ms = ((clock.first_chunk or time.perf_counter()) - clock.started) * 1000
        timings = Timings(
            prefill_ms=first_ms,
            total_ms=total_ms,
            prefill_tokens=stream.prompt_tokens or len(job.prompt_ids),
            cached_tokens=stream.cached_tokens,
        )
        if error is not None:
            return JobResult(timings=timings, finish_reason=FinishReason.ERROR, error=error)
        canvases = stream.canvases(reason, self.decode) if stream.chunks else ()  # () when nothing arrived
        return JobResult(canvases=canvases, timings=timings, finish_reason=reason)

    async def _attempts(
        self, body: dict[str, Any], stream: StreamedCompletion, control: StepControl | None, clock: _Clock
    ) -> str | None:
        """Stream `body` from the least busy replica, retrying elsewhere after connection errors; the error."""
        tried: set[str] = set()
        errors: list[str] = []
        for attempt in range(self.config.retries + 1):
            if attempt:
                await asyncio.sleep(self.config.retry_backoff_s * 2 ** (attempt - 1))
            replica = self.replicas.pick(time.monotonic(), frozenset(tried))
            tried.add(replica.url)
            replica.in_flight += 1
            replica.requests += 1
            try:
                await self._stream(replica, body, stream, control, clock)
            except _Retryable as err:
                self.replicas.mark_failed(replica, str(err), time.monotonic())
                errors.append(f"{replica.url}: {err}")
                if stream.chunks:  # part of the answer has been used already: do not mix two answers
                    return f"{replica.url}: the stream broke off: {err}"
                continue
            except _Refused as err:
                return f"{replica.url}: {err}"
            finally:
                replica.in_flight -= 1
            self.replicas.mark_ok(replica)
            return None
        return "vLLM unreachable: " + "; ".join(errors)

    async def _stream(
        self,
        replica: Replica,
        body: dict[str, Any],
        stream: StreamedCompletion,
        control: StepControl | None,
        clock: _Clock,
    ) -> None:
        on_draft = control.on_draft if control is not None else None
        try:
            async with self.client.stream("POST", f"{replica.url}/v1/completions", json=body) as response:
                if response.status_code != 200:
                    text = server_error_text(response.status_code, await response.aread())
                    if response.status_code in RETRY_STATUS:
                        raise _Retryable(text)
                    if response.status_code == 401:
                        text += " (pass the server's --api-key as --vllm-token)"
                    raise _Refused(text)
                async for line in response.aiter_lines():
                    data = sse_data(line)
                    if data is None:
                        continue
                    if isinstance(data, dict) and "error" in data:
                        raise _Refused(server_error_text(200, line[5:].encode()))
                    if clock.first_chunk is None:
                        clock.first_chunk = time.perf_counter()
                    stream.add(data)
                    if on_draft is not None and data.get("choices"):
                        on_draft(stream.chunks, stream.drafts())
                    # lines already buffered are read without suspending: let the deadline and cancel checks run
                    await asyncio.sleep(0)
        except (httpx.TransportError, httpx.DecodingError) as err:
            raise _Retryable(_describe(err)) from err


def _reported(result: JobResult, control: StepControl | None) -> JobResult:
    """`result`, after handing it to the control's `on_result`."""
    if control is not None and control.on_result is not None:
        control.on_result(result)
    return result


def _describe(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
