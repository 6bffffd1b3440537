"""The language server on a large document: a real `diffusion-copilot serve` process over stdio, a ~10 MB Python
file (standard-library modules joined), opened and then edited one character at a time.

Each keystroke is a didChange followed at once by a status command (`diffusionCopilot.status`); its round trip is
the server's time for that keystroke (the server reads messages in order, so the status waits behind the edit).
Then `--completions` inline-completion requests at the last edit: with no engine connected the server answers null
once it has built the request, so their round trip is the server's own part of one. A second task asks for the
status every `--ping-ms` throughout, from the open to the end; its worst round trip is how long the server was
unable to answer (while this client serializes the 10 MB didOpen its own pings wait too, so the worst after the
open is reported on its own). RSS is the server process's, at the end and at its peak. The server's log gives the
document worker's time per batch of edits (it runs off the event loop). No engine is started (`engineCommand` is
/bin/true): this measures the server alone.
Usage: python -m bench.latency.large_document [--mb 10] [--edits 200] [--interval-ms 20] [--completions 50]
Writes bench/results/large_document.json with the machine, the load average and the commit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Any

from lsprotocol import types as t
from pytest_lsp import ClientServerConfig, LanguageClient

from bench.lib.report import cpu_machine, percentile

URI = "file:///bench/large_module.py"
WORKER = re.compile(r"document worker: .* in ([\d.]+) ms")


def large_source(megabytes: float) -> str:
    """Standard-library modules joined until the text reaches `megabytes` (the same text every run)."""
    parts: list[str] = []
    size, want = 0, int(megabytes * 1_000_000)
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).rglob("*.py")):
        if "test" in path.parts or size >= want:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        parts.append(text if text.endswith("\n") else text + "\n")
        size += len(text.encode("utf-8"))
    return "".join(parts)


def rss_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process in MB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


async def status_ms(client: LanguageClient) -> float:
    began = time.perf_counter()
    await client.workspace_execute_command_async(t.ExecuteCommandParams(command="diffusionCopilot.status"))
    return (time.perf_counter() - began) * 1000


async def run(args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    log_file = scratch / "server.log"
    env = {**os.environ, "DIFFUSION_COPILOT_RUNTIME_DIR": str(scratch / "run"), "XDG_STATE_HOME": str(scratch)}
    command = [sys.executable, "-m", "diffusion_copilot.server.cli", "--log-level", "INFO", "serve", "--log-file",
               str(log_file)]
    client = await ClientServerConfig(server_command=command, server_env=env).start()
    assert isinstance(client, LanguageClient) and client._server is not None
    pid = client._server.pid
    settings = {"engineCommand": ["/bin/true"], "telemetry": False}
    client.set_configuration(settings, section="diffusionCopilot")
    await client.initialize_session(t.InitializeParams(capabilities=t.ClientCapabilities(),
                                                       initialization_options={"diffusionCopilot": settings}))
    text = large_source(args.mb)
    lines = text.split("\n")
    rss_before, _ = rss_mb(pid)
    await status_ms(client)  # warm-up

    pings: list[tuple[float, float]] = []  # (sent at, round trip ms)
    stop = asyncio.Event()

    async def pinger() -> None:
        while not stop.is_set():
            sent = time.perf_counter()
            pings.append((sent, await status_ms(client)))
            await asyncio.sleep(args.ping_ms / 1000)

    ping_task = asyncio.create_task(pinger())
    began = time.perf_counter()
    client.text_document_did_open(t.DidOpenTextDocumentParams(
        text_document=t.TextDocumentItem(uri=URI, language_id="python", version=1, text=text)))
    open_send_ms = (time.perf_counter() - began) * 1000  # this client serializing and writing 10 MB
    open_ms = await status_ms(client)
    opened = time.perf_counter()
    open_total_ms = (opened - began) * 1000
    keystrokes: list[float] = []
    candidates = [i for i, text_line in enumerate(lines) if text_line.strip()]
    line = 0
    for index in range(args.edits):
        if index % 20 == 0:  # bursts of 20 keystrokes on one line, at lines spread over the file
            line = candidates[(index * 7919) % len(candidates)]
        character = len(lines[line])
        client.text_document_did_change(t.DidChangeTextDocumentParams(
            text_document=t.VersionedTextDocumentIdentifier(uri=URI, version=index + 2),
            content_changes=[t.TextDocumentContentChangePartial(
                range=t.Range(start=t.Position(line, character), end=t.Position(line, character)), text="x")]))
        lines[line] += "x"
        keystrokes.append(await status_ms(client))
        await asyncio.sleep(args.interval_ms / 1000)
    completions: list[float] = []  # no engine answers: this is the server's own work before asking one
    for _ in range(args.completions):
        began = time.perf_counter()
        await client.text_document_inline_completion_async(t.InlineCompletionParams(
            text_document=t.TextDocumentIdentifier(uri=URI), position=t.Position(line, len(lines[line])),
            context=t.InlineCompletionContext(trigger_kind=t.InlineCompletionTriggerKind.Automatic)))
        completions.append((time.perf_counter() - began) * 1000)
        await asyncio.sleep(args.interval_ms / 1000)
    await asyncio.sleep(args.settle_s)  # the worker catches up; the pinger keeps measuring
    stop.set()
    await ping_task
    rss_end, rss_peak = rss_mb(pid)
    await client.shutdown_session()
    await client.stop()
    worker = [float(m.group(1)) for m in map(WORKER.search, log_file.read_text().splitlines()) if m]
    return {
        "benchmark": "large_document",
        "document_mb": round(len(text.encode("utf-8")) / 1e6, 2),
        "document_lines": len(lines),
        "edits": args.edits,
        "edit_interval_ms": args.interval_ms,
        "open_client_send_ms": round(open_send_ms, 1),
        "open_then_status_ms": round(open_ms, 1),
        "open_total_ms": round(open_total_ms, 1),
        "keystroke_ms_p50": round(percentile(keystrokes, 0.5), 2),
        "keystroke_ms_p99": round(percentile(keystrokes, 0.99), 2),
        "keystroke_ms_max": round(max(keystrokes), 2),
        "completion_requests": len(completions),
        "completion_request_ms_p50": round(percentile(completions, 0.5), 2) if completions else None,
        "completion_request_ms_p99": round(percentile(completions, 0.99), 2) if completions else None,
        "status_pings": len(pings),
        "status_ms_worst": round(max(ms for _, ms in pings), 2),
        "status_ms_worst_after_open": round(max(ms for sent, ms in pings if sent >= opened), 2),
        "status_ms_p50": round(percentile([ms for _, ms in pings], 0.5), 2),
        "worker_batches": len(worker),
        "worker_ms_p50": round(percentile(worker, 0.5), 1) if worker else None,
        "worker_ms_p99": round(percentile(worker, 0.99), 1) if worker else None,
        "rss_mb_before_open": round(rss_before, 1),
        "rss_mb_end": round(rss_end, 1),
        "rss_mb_peak": round(rss_peak, 1),
        **cpu_machine(),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=float, default=10.0, help="document size in MB")
    parser.add_argument("--edits", type=int, default=200)
    parser.add_argument("--interval-ms", type=float, default=20.0, help="pause after each keystroke's status")
    parser.add_argument("--ping-ms", type=float, default=10.0, help="pause between the background status pings")
    parser.add_argument("--completions", type=int, default=50,
                        help="inline-completion requests after the edits (no engine: the server's own part)")
    parser.add_argument("--settle-s", type=float, default=2.0, help="time after the last edit, still pinging")
    parser.add_argument("--out", default="bench/results/large_document.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        result = asyncio.run(run(args, Path(scratch)))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"{'measure':40} {'value':>10}")
    for name, key, unit in (
        ("open: this client sending it", "open_client_send_ms", "ms"),
        ("open sent, then a status answered", "open_then_status_ms", "ms"),
        ("keystroke (didChange + status) p50", "keystroke_ms_p50", "ms"),
        ("keystroke p99", "keystroke_ms_p99", "ms"),
        ("keystroke max", "keystroke_ms_max", "ms"),
        ("inline completion, no engine, p50", "completion_request_ms_p50", "ms"),
        ("inline completion, no engine, p99", "completion_request_ms_p99", "ms"),
        ("status ping, worst (the client's send included)", "status_ms_worst", "ms"),
        ("status ping, worst after the open", "status_ms_worst_after_open", "ms"),
        ("document worker per batch p50", "worker_ms_p50", "ms"),
        ("document worker per batch p99", "worker_ms_p99", "ms"),
        ("server RSS at the end", "rss_mb_end", "MB"),
        ("server RSS peak", "rss_mb_peak", "MB"),
    ):
        print(f"{name:40} {result[key]!s:>7} {unit}")
    print(f"{result['document_mb']} MB, {result['document_lines']} lines, {result['edits']} edits; {result['device']} "
          f"(load {result['load_average_1m_at_end']}), {result['commit']}")


if __name__ == "__main__":
    main()
