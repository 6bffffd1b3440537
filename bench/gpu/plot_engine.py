"""Plot a bench/gpu/engine.py result: per-workload latency next to its weight-streaming floor, and the
per-step times of the decoder, transformers' generate() and autoregressive decoding.

    python -m bench.gpu.plot_engine bench/results/gpu_engine.json   # writes gpu_engine.png beside it
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def plot(report: dict[str, Any], path: Path) -> Path:
    """Two panels: engine workloads (p50, p90 whisker, floor) and per-forward times against their floors."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    workloads = report["workloads"]
    engine = {k: w for k, w in workloads.items() if "latency_ms_p50" in w}
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 5))
    labels = [
        f"{k}\n{w['description']}\nC{w['canvas']}x{w['alternatives']}, {w['steps']} st" for k, w in engine.items()
    ]
    p50 = [w["latency_ms_p50"] for w in engine.values()]
    p90 = [w["latency_ms_p90"] for w in engine.values()]
    floor = [w.get("floor_ms", w.get("floor_ms_per_request", 0.0)) for w in engine.values()]
    xs = list(range(len(engine)))
    left.bar(xs, p50, color="#4878d0", label="engine p50")
    left.errorbar(
        xs,
        p50,
        yerr=[[0] * len(p50), [b - a for a, b in zip(p50, p90, strict=True)]],
        fmt="none",
        ecolor="black",
        capsize=3,
        label="p90",
    )
    left.scatter(xs, floor, marker="_", s=900, color="#d65f5f", zorder=3, label="floor (bytes / copy BW)")
    others = []  # (label, ms, colour): generate() is cold like W2; AR is decode only, prompt already encoded
    hf = workloads.get("hf", {})
    for canvas in (64, 256):
        if f"dynamic_C{canvas}_ms" in hf:
            others.append((f"HF generate\ncold C{canvas}\n12 st", hf[f"dynamic_C{canvas}_ms"], "#ee854a"))
    compiled = workloads.get("hf-compile", {})
    if "static_compiled_C64_ms" in compiled:
        others.append(("HF generate\nstatic+compile\ncold C64", compiled["static_compiled_C64_ms"], "#ee854a"))
    ar = workloads.get("W6", {})
    for count in (64, 256):
        mode = "cuda_graph" if f"cuda_graph_{count}_decode_ms" in ar else "eager"
        if f"{mode}_{count}_decode_ms" in ar:
            others.append((f"W6 AR {count} tok\n{mode}\ndecode only", ar[f"{mode}_{count}_decode_ms"], "#8c613c"))
    for offset, (_, ms, colour) in enumerate(others):
        left.bar([len(xs) + offset], [ms], color=colour)
    left.set_xticks(xs + list(range(len(xs), len(xs) + len(others))), labels + [o[0] for o in others], fontsize=6)
    left.set_ylabel("ms per request (W5: per request, 8 arriving together)")
    left.set_title("Engine workloads, prompt 2,048 tokens")
    left.legend(fontsize=7)

    names, measured, floors = [], [], []
    for section, label in (("step", "stock"), ("step-engine", "engine")):
        step = workloads.get(section, {})
        for key in ("C64", "C256", "4xC64"):
            if f"decoder_{key}_ms" in step:
                names.append(f"{label}\ndecoder\n{key}")
                measured.append(step[f"decoder_{key}_ms"])
                floors.append(step[f"decoder_{key}_floor_ms"])
    for key, w in engine.items():
        names.append(f"{key}\nengine\nstep")
        measured.append(w["step_ms_p50"])
        floors.append(w.get("step_floor_ms", float("nan")))
    ar = workloads.get("W6", {})
    for mode in ("eager", "cuda_graph"):
        if f"{mode}_256_token_ms" in ar:
            names.append(f"AR token\n{mode}")
            measured.append(ar[f"{mode}_256_token_ms"])
            floors.append(ar["token_floor_ms"])
    xs = list(range(len(names)))
    right.bar(xs, measured, color="#6acc64", label="measured")
    right.scatter(xs, floors, marker="_", s=700, color="#d65f5f", zorder=3, label="floor")
    right.set_xticks(list(xs), names, fontsize=7)
    right.set_yscale("log")
    right.set_ylabel("ms per forward")
    right.set_title("One forward: decoder alone, engine step (incl. sampler), AR token")
    right.legend(fontsize=7)
    fig.suptitle(
        f"{report.get('device')} | {report['model']['config']} | random weights | commit {report['commit']}", fontsize=9
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


if __name__ == "__main__":
    source = Path(sys.argv[1] if len(sys.argv) > 1 else "bench/results/gpu_engine.json")
    print(plot(json.loads(source.read_text()), source.with_suffix(".png")))
