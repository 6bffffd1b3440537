"""The engine runs of one GPU round side by side, as BENCHMARKS.md tabulates them: decoder forward per shape against
its floor, then the workloads.

    python -m bench.gpu.round_table DIR [--names fp8,fp8_grouped,...]   # DIR holds gpu_engine*_LABEL.json files
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

STEPS = (("decoder_C64_ms", "C64"), ("decoder_C256_ms", "C256"), ("decoder_4xC64_ms", "4×C64"))


def label_of(path: Path, report: dict[str, Any]) -> str:
    return str(report.get("args", {}).get("label") or path.stem.removeprefix("gpu_engine_"))


def rows(reports: dict[str, dict[str, Any]]) -> list[str]:
    """Markdown rows: one per run."""
    head = "| run | " + " | ".join(f"step {name} ms (floor)" for _, name in STEPS)
    head += " | W1 ms (prefill) | W2 ms | W3 ms (tok/s) | W4 ms | W5 each ms (× one stream's tok/s) | W7 / W8 ms |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for label, report in reports.items():
        w = report.get("workloads", {})
        step = w.get("step-engine", {})
        cells = [label]
        for key, _ in STEPS:
            value, floor = step.get(key), step.get(key.replace("_ms", "_floor_ms"))
            cells.append(f"{value:.2f} ({floor:.1f})" if value is not None and floor is not None else "—")

        # a workload that failed holds only its error: its cells stay empty
        w1, w2, w3, w4, w5, w7, w8 = (
            w[name] if "latency_ms_p50" in w.get(name, {}) else {}
            for name in ("W1", "W2", "W3", "W4", "W5", "W7", "W8")
        )
        cells.append(f"{w1['latency_ms_p50']:.0f} ({w1['prefill_ms_p50']:.0f})" if w1 else "—")
        cells.append(f"{w2['latency_ms_p50']:.0f}" if w2 else "—")
        cells.append(f"{w3['latency_ms_p50']:.0f} ({w3['canvas_tokens_per_s']:.0f})" if w3 else "—")
        cells.append(f"{w4['latency_ms_p50']:.0f}" if w4 else "—")
        if w5 and w2:
            rate = w5["aggregate_canvas_tokens_per_s"] / w2["canvas_tokens_per_s"]
            cells.append(f"{w5['latency_ms_p50']:.0f} ({rate:.1f}×)")
        else:
            cells.append("—")
        cells.append(f"{w7['latency_ms_p50']:.0f} / {w8['latency_ms_p50']:.0f}" if w7 and w8 else "—")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--names", help="labels in this order (default: every run, by name)")
    args = parser.parse_args()
    found = {}
    for path in sorted(args.directory.glob("gpu_engine*.json")):
        report = json.loads(path.read_text(encoding="utf-8"))
        if report.get("workloads"):
            found[label_of(path, report)] = report
    names = args.names.split(",") if args.names else list(found)
    reports = {name: found[name] for name in names if name in found}
    first = next(iter(reports.values()), {})
    print(f"{first.get('device')} | copy {first.get('copy_bandwidth_TBps')} TB/s | commit {first.get('commit')}")
    print("\n".join(rows(reports)))


if __name__ == "__main__":
    main()
