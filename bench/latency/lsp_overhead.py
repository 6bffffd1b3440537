"""The language server's own time per inline-completion request, measured with a real LSP client over stdio.

For each request the server logs when the request message was read, when the engine request left and when its
reply came back, and when the response was written; this script reads those lines. It reports, p50/p99:
  receipt → engine request sent, engine reply → response sent (engine requests), the server's whole time for a
  typing-through answer (cache), and the round trip the client sees.
Warm-up is excluded. Usage: python -m bench.latency.lsp_overhead [--model DIR] [--requests 100]
Writes bench/results/lsp_overhead.json with the machine and the commit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from lsprotocol import types as t
from pytest_lsp import ClientServerConfig, LanguageClient

from bench.lib.report import cpu_machine

URI = "file:///bench/module.py"
TIMING = re.compile(
    r"timing ([\w-]+) (\w+) source=(\w+) items=(\d+) total_ms=([\d.]+)"
    r"(?: before_engine_ms=([\d.]+) engine_ms=([\d.]+) after_engine_ms=([\d.]+))?"
)


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))], 3)


def stop_engines(runtime_dir: Path) -> None:
    """Ask the engines this run started to exit."""
    for path in runtime_dir.glob("engine-*.sock"):
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(30)
            sock.connect(str(path))
            sock.sendall(b'{"id": 1, "method": "shutdown"}\n')
            while sock.recv(65536):
                pass
    for lock in runtime_dir.glob("engine-*.lock"):  # wait until each has exited; stop one that has not
        pid = int(lock.read_text().strip() or 0)
        deadline = time.monotonic() + 30
        while pid and time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
            time.sleep(0.1)
        if pid and Path(f"/proc/{pid}").exists():
            os.kill(pid, signal.SIGTERM)


def params(line: int, character: int) -> t.InlineCompletionParams:
    return t.InlineCompletionParams(
        text_document=t.TextDocumentIdentifier(uri=URI),
        position=t.Position(line=line, character=character),
        context=t.InlineCompletionContext(trigger_kind=t.InlineCompletionTriggerKind.Automatic),
    )


async def run(args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    log_file = scratch / "server.log"
    env = {**os.environ, "DIFFUSION_COPILOT_RUNTIME_DIR": str(scratch / "run"), "XDG_STATE_HOME": str(scratch)}
    command = [
        sys.executable,
        "-m",
        "diffusion_copilot.server.cli",
        "--log-level",
        "INFO",
        "serve",
        "--log-file",
        str(log_file),
    ]
    client = await ClientServerConfig(server_command=command, server_env=env).start()
    assert isinstance(client, LanguageClient)
    ready = asyncio.Event()
    model: dict[str, Any] = {}

    def on_status(status: Any) -> None:
        if status.state == "ready":
            model.update(name=status.model, has_random_weights=status.hasRandomWeights)
            ready.set()

    client.feature("diffusionCopilot/status")(on_status)
    settings = {
        "device": "cpu",
        "debounceMs": 0,
        "maxSteps": args.steps,
        "canvasLength": args.canvas,
        "telemetry": False,
        "minConfidence": 0,  # every suggestion shows, so that the next keystroke can type through it
        "minAcceptance": 0,
        **({"model": args.model} if args.model else {}),
    }
    client.set_configuration(settings, section="diffusionCopilot")
    started = time.perf_counter()
    await client.initialize_session(
        t.InitializeParams(
            capabilities=t.ClientCapabilities(
                text_document=t.TextDocumentClientCapabilities(inline_completion=t.InlineCompletionClientCapabilities())
            ),
            initialization_options={"diffusionCopilot": settings},
        )
    )
    await asyncio.wait_for(ready.wait(), 300)
    start_s = time.perf_counter() - started
    source = Path(os.__file__).read_text().splitlines()[: args.lines]
    client.text_document_did_open(
        t.DidOpenTextDocumentParams(
            text_document=t.TextDocumentItem(uri=URI, language_id="python", version=1, text="\n".join(source) + "\n")
        )
    )
    lines = [i for i, text in enumerate(source) if len(text) > 8]
    version = 1
    round_trip: dict[str, list[float]] = {"engine": [], "typing": []}
    for index in range(args.warmup + args.requests):
        line = lines[index % len(lines)]
        character = len(source[line]) - (index // len(lines)) - 1  # a new context every time
        began = time.perf_counter()
        result = await client.text_document_inline_completion_async(params(line, character))
        if index >= args.warmup:
            round_trip["engine"].append((time.perf_counter() - began) * 1000)
        if not isinstance(result, t.InlineCompletionList) or not result.items:
            continue
        shown = str(result.items[0].insert_text)
        if len(shown) < 2 or "\n" in shown[:1]:
            continue
        version += 1  # type the first character of the suggestion, then ask again: answered from cache
        client.text_document_did_change(
            t.DidChangeTextDocumentParams(
                text_document=t.VersionedTextDocumentIdentifier(uri=URI, version=version),
                content_changes=[
                    t.TextDocumentContentChangePartial(
                        range=t.Range(start=t.Position(line, character), end=t.Position(line, character)), text=shown[0]
                    )
                ],
            )
        )
        source[line] = source[line][:character] + shown[0] + source[line][character:]
        began = time.perf_counter()
        await client.text_document_inline_completion_async(
            params(line, character + len(shown[0].encode("utf-16-le")) // 2)
        )
        if index >= args.warmup:
            round_trip["typing"].append((time.perf_counter() - began) * 1000)
    await client.shutdown_session()
    await client.stop()

    rows = [m.groups() for m in map(TIMING.search, log_file.read_text().splitlines()) if m]
    engine_rows = [r for r in rows if r[2] == "engine"][args.warmup :]
    typing_rows = [r for r in rows if r[2] == "typing"]
    before = [float(r[5]) for r in engine_rows]
    after = [float(r[7]) for r in engine_rows]
    engine = [float(r[6]) for r in engine_rows]
    typing = [float(r[4]) for r in typing_rows]
    return {
        "benchmark": "lsp_overhead",
        "model": model.get("name"),
        "model_has_random_weights": model.get("has_random_weights"),
        "canvas": args.canvas,
        "steps": args.steps,
        "document_lines": len(source),
        "server_start_to_ready_s": round(start_s, 2),
        "engine_requests": len(engine_rows),
        "typing_through_requests": len(typing_rows),
        "receipt_to_engine_ms_p50": percentile(before, 0.5),
        "receipt_to_engine_ms_p99": percentile(before, 0.99),
        "engine_to_response_ms_p50": percentile(after, 0.5),
        "engine_to_response_ms_p99": percentile(after, 0.99),
        "engine_round_trip_ms_p50": percentile(engine, 0.5),
        "typing_through_server_ms_p50": percentile(typing, 0.5),
        "typing_through_server_ms_p99": percentile(typing, 0.99),
        "client_round_trip_engine_ms_p50": percentile(round_trip["engine"], 0.5),
        "client_round_trip_typing_ms_p50": percentile(round_trip["typing"], 0.5),
        "client_round_trip_typing_ms_p99": percentile(round_trip["typing"], 0.99),
        **cpu_machine(),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", help="checkpoint directory (default: the embedded default model)")
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--canvas", type=int, default=16)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--lines", type=int, default=400, help="lines of the document (os.py's first lines)")
    parser.add_argument("--out", default="bench/results/lsp_overhead.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        result = asyncio.run(run(args, Path(scratch)))
        stop_engines(Path(scratch) / "run")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"{'measure':36} {'p50 ms':>9} {'p99 ms':>9}")
    for name, key in (
        ("receipt -> engine request", "receipt_to_engine_ms"),
        ("engine reply -> response", "engine_to_response_ms"),
        ("typing-through, server total", "typing_through_server_ms"),
    ):
        print(f"{name:36} {result[key + '_p50']!s:>9} {result[key + '_p99']!s:>9}")
    print(f"{'engine round trip (socket + job)':36} {result['engine_round_trip_ms_p50']!s:>9}")
    print(
        f"{'client round trip, engine / typing':36} {result['client_round_trip_engine_ms_p50']!s:>9} "
        f"{result['client_round_trip_typing_ms_p50']!s:>9}"
    )
    print(
        f"requests: {result['engine_requests']} engine, {result['typing_through_requests']} typing-through; "
        f"server start to ready {result['server_start_to_ready_s']} s; {result['device']} (load "
        f"{result['load_average_1m_at_end']}), {result['commit']}"
    )


if __name__ == "__main__":
    main()
