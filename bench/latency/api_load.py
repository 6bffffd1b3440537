"""Load on the HTTP API over loopback: many concurrent clients for a fixed time against `diffusion-copilot api`
with the default model on the CPU, a fresh engine process of its own. Clients mix the code-aware, streaming and
OpenAI endpoints and wait out `Retry-After` when refused.

Reports status counts (anything but 200 and the documented 429 is an error), latency percentiles of answered
requests, throughput, and the resident memory of the API and engine processes sampled every second.

Usage: python -m bench.latency.api_load [--clients 64] [--seconds 60] [--model DIR]. Warm-up is excluded; prints a table
and writes bench/results/api_load.json with the machine and the commit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

DOCS = [
    ("import os\n\n\ndef read_config(path: str) -> dict:\n    \"\"\"Read a JSON config file.\"\"\"\n    ", 5, 4),
    ("class Stack:\n    def __init__(self):\n        self.items = []\n\n    def push(self, item):\n        ", 5, 8),
    ("def fib(n):\n    if n < 2:\n        return n\n    return ", 3, 11),
    ("for i in range(10):\n    print(", 1, 10),
]


@dataclass
class Tally:
    statuses: dict[str, int] = field(default_factory=dict)
    latency_ms: list[float] = field(default_factory=list)  # answered (200) requests
    engine_ms: list[float] = field(default_factory=list)  # the engine's own time per job (code completions)
    errors: list[str] = field(default_factory=list)

    def count(self, key: str) -> None:
        self.statuses[key] = self.statuses.get(key, 0) + 1


def commit() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False)
    dirty = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True, check=False).stdout
    return (done.stdout.strip() or "unknown") + ("+uncommitted" if dirty.strip() else "")


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def rss_mb(pid: int) -> float | None:
    with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def request_for(rng: random.Random) -> tuple[str, dict[str, Any]]:
    text, line, character = rng.choice(DOCS)
    kind = rng.random()
    if kind < 0.2:
        prefix = text
        return "/v1/completions", {"prompt": prefix, "suffix": "\n", "max_tokens": 32, "stop": ["\n\n"]}
    body = {"text": text, "position": {"line": line, "character": character}, "language": "python",
            "path": "bench/example.py", "stream": kind > 0.9}
    return "/v1/code/completions", body


async def client_loop(client: httpx.AsyncClient, stop_at: float, seed: int, tally: Tally) -> None:
    rng = random.Random(seed)
    while time.monotonic() < stop_at:
        path, body = request_for(rng)
        started = time.perf_counter()
        try:
            response = await client.post(path, json=body)
        except httpx.HTTPError as err:
            tally.count(type(err).__name__)
            tally.errors.append(f"{path}: {type(err).__name__}: {err}")
            continue
        tally.count(str(response.status_code))
        if response.status_code == 200:
            tally.latency_ms.append((time.perf_counter() - started) * 1000)
            if path == "/v1/code/completions" and not body.get("stream"):
                tally.engine_ms.append(response.json()["timings"]["engine_ms"])
            if body.get("stream") and "event: final" not in response.text:
                tally.count("stream_without_final")
                tally.errors.append(f"{path}: stream: {response.text[-300:]}")
        elif response.status_code == 429:
            wait_s = float(response.headers.get("retry-after", "1"))
            await asyncio.sleep(min(wait_s, max(stop_at - time.monotonic(), 0)))
        else:
            tally.errors.append(f"{path}: {response.status_code}: {response.text[:200]}")


async def sample_memory(pids: dict[str, int], samples: list[dict[str, float | None]], stop: asyncio.Event) -> None:
    started = time.monotonic()
    while not stop.is_set():
        samples.append({"t_s": round(time.monotonic() - started, 1), **{k: rss_mb(p) for k, p in pids.items()}})
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=1.0)


def engine_pid(runtime_dir: Path) -> int | None:
    for lock in runtime_dir.glob("engine-*.lock"):
        text = lock.read_text().strip()
        if text.isdigit():
            return int(text)
    return None


async def wait_ready(url: str, process: subprocess.Popen[bytes], timeout_s: float = 600) -> None:
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise SystemExit(f"the API server exited with status {process.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get("/v1/health")).json().get("status") == "ok":
                    return
            await asyncio.sleep(0.2)
    raise SystemExit("the API server did not get ready")


async def run(args: argparse.Namespace, runtime_dir: Path) -> dict[str, Any]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "diffusion_copilot.server.cli", "api", "--port", str(port), "--device", "cpu",
               "--max-queue", str(args.max_queue)] + (["--model", args.model] if args.model else [])
    env = {**os.environ, "DIFFUSION_COPILOT_RUNTIME_DIR": str(runtime_dir)}
    log = open(runtime_dir / "api.log", "wb")  # noqa: SIM115 (kept open for the life of the process)
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        started = time.perf_counter()
        await wait_ready(url, process)
        ready_s = time.perf_counter() - started
        limits = httpx.Limits(max_connections=args.clients + 4, max_keepalive_connections=args.clients + 4)
        async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
            health = (await client.get("/v1/health")).json()
            warm = Tally()
            await asyncio.gather(*(client_loop(client, time.monotonic() + 3, 1000 + i, warm) for i in range(2)))
            engine_at_start = engine_pid(runtime_dir)
            pids = {"api_rss_mb": process.pid, "engine_rss_mb": engine_at_start or process.pid}
            samples: list[dict[str, float | None]] = []
            stop = asyncio.Event()
            sampler = asyncio.ensure_future(sample_memory(pids, samples, stop))
            tally = Tally()
            stop_at = time.monotonic() + args.seconds
            began = time.perf_counter()
            await asyncio.gather(*(client_loop(client, stop_at, i, tally) for i in range(args.clients)))
            wall_s = time.perf_counter() - began
            stop.set()
            await sampler
            metrics = (await client.get("/metrics")).text
            health["engine_restarted"] = engine_pid(runtime_dir) != engine_at_start
    finally:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=30)
        log.close()
    return report(args, tally, samples, wall_s, ready_s, health, metrics)


def report(args: argparse.Namespace, tally: Tally, samples: list[dict[str, float | None]], wall_s: float,
           ready_s: float, health: dict[str, Any], metrics: str) -> dict[str, Any]:
    def memory(key: str) -> dict[str, float | None]:
        values = [s[key] for s in samples if s.get(key) is not None]
        head, tail = values[: max(len(values) // 10, 1)], values[-max(len(values) // 10, 1):]
        return {"first_mb": round(sum(head) / len(head), 1) if head else None,  # type: ignore[arg-type]
                "last_mb": round(sum(tail) / len(tail), 1) if tail else None,  # type: ignore[arg-type]
                "max_mb": round(max(values), 1) if values else None}  # type: ignore[type-var]

    answered = tally.statuses.get("200", 0)
    unexpected = {k: v for k, v in tally.statuses.items() if k not in ("200", "429")}
    torch_threads = None
    with contextlib.suppress(Exception):
        import torch

        torch_threads = torch.get_num_threads()
    return {
        "benchmark": "api_load",
        "clients": args.clients,
        "seconds": round(wall_s, 1),
        "model": health.get("model"),
        "model_has_random_weights": health.get("model_has_random_weights"),
        "max_queue": args.max_queue,
        "statuses": tally.statuses,
        "errors_beyond_429": sum(unexpected.values()),
        "engine_restarted": health.get("engine_restarted"),
        "error_samples": tally.errors[:5],
        "answered_per_s": round(answered / wall_s, 2),
        "latency_ms_p50": percentile(tally.latency_ms, 0.5),
        "latency_ms_p90": percentile(tally.latency_ms, 0.9),
        "latency_ms_p99": percentile(tally.latency_ms, 0.99),
        "engine_ms_per_job_p50": percentile(tally.engine_ms, 0.5),
        "ready_s": round(ready_s, 1),
        "api_rss": memory("api_rss_mb"),
        "engine_rss": memory("engine_rss_mb"),
        "rss_samples": samples,
        "server_cancellations": [line for line in metrics.splitlines() if line.startswith(
            "diffusion_copilot_api_cancellations_total")],
        "device": f"cpu: {platform.machine()}, {os.cpu_count()} cores (torch threads in this process: "
                  f"{torch_threads})",
        "load_average_1m_after": round(os.getloadavg()[0], 2),  # other work on the machine shares its cores
        "commit": commit(),
    }


def print_table(result: dict[str, Any]) -> None:
    rows = [
        ("clients × seconds", f"{result['clients']} × {result['seconds']}"),
        ("model", f"{result['model']} (random weights: {result['model_has_random_weights']})"),
        ("statuses", ", ".join(f"{k}: {v}" for k, v in sorted(result["statuses"].items()))),
        ("errors beyond 429", str(result["errors_beyond_429"])),
        ("answered / s", str(result["answered_per_s"])),
        ("latency p50 / p90 / p99 ms", " / ".join(f"{result[k]:.0f}" if result[k] is not None else "-"
                                                 for k in ("latency_ms_p50", "latency_ms_p90", "latency_ms_p99"))),
        ("engine time per job p50 ms", f"{result['engine_ms_per_job_p50'] or 0:.0f}"),
        ("API RSS first → last (max) MB", "{first_mb} → {last_mb} ({max_mb})".format(**result["api_rss"])),
        ("engine RSS first → last (max) MB", "{first_mb} → {last_mb} ({max_mb})".format(**result["engine_rss"])),
        ("machine load average (1 min)", str(result["load_average_1m_after"])),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--max-queue", type=int, default=8)
    parser.add_argument("--model", help="checkpoint directory (default: the embedded default model)")
    parser.add_argument("--out", default="bench/results/api_load.json")
    parser.add_argument("--logs", type=Path, help="keep the engine's and the API's logs in this directory")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        runtime_dir = args.logs or Path(scratch) / "run"
        runtime_dir.mkdir(parents=True, exist_ok=True)
        try:
            result = asyncio.run(run(args, runtime_dir))
        finally:
            with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX) as s:  # stop the bench's own engine
                sock = next(runtime_dir.glob("engine-*.sock"), None)
                if sock is not None:
                    s.connect(str(sock))
                    s.sendall(b'{"id": 1, "method": "shutdown"}\n')
    print_table(result)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
