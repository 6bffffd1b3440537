"""GPU benchmark of our engine (Denoiser) on the full-size DiffusionGemma 26B-A4B with random weights, next to
transformers' generate(), an autoregressive baseline on the same weights and the weight-streaming floor.

    python -m bench.gpu.engine [--out DIR] [--workloads step,hf,W1,...,W6] [--hf-compile] [--eager | --fp8 ...]
                               [--weights int4|nvfp4|int8|fp8] [--memory-cap-gb 30]
                               [--first-completion [--checkpoint DIR]] [--tiny]
    python -m bench.gpu.engine --save-checkpoint DIR   # the random model as safetensors, for --checkpoint

Workloads (prompt 2,048 random token ids; random weights never converge, so every canvas runs its step cap):
  step  one decoder forward at canvas 64 and 256 and 4 x 64, and a 2,048-token prefill (stock model only)
  hf    transformers generate(), dynamic cache, canvas 64 and 256, 12 steps (prefill included)
  W1    keystroke: all but the last 32 prompt tokens were in the previous request (prefix cache), canvas 64, 12 steps
  W2    cold: the same with nothing cached
  W3    block: canvas 256, 16 steps, prefix cached as in W1
  W4    alternatives: 4 canvases of 64 sharing one prompt, 12 steps, prefix cached as in W1
  W5    load: 8 requests with different prompts arriving together, one Engine.run_batch, canvas 64, 12 steps
  W7    completion of canvas 128, 12 steps, prefix cached as in W1 (not by default)
  W8    next-edit job over a 128-token window: the canvas starts from the window's tokens, else as W7 (not by
        default); random weights run every step either way, so W8 / W7 is the edit job's own cost per request
  step-engine  the engine's decoder forward alone (its CUDA graph where it has one), same shapes as step
  profile  the kernels of the engine's canvas-64 decoder forward under torch.profiler, by name (not by default)
  W6    autoregressive: the causal encoder decoding 64 and 256 tokens one at a time over a static cache, eager and
        from a CUDA graph
  hf-compile  generate() with a static cache and torch.compile (also --hf-compile; time-boxed)
Sections run in that order: step and hf on the stock transformers model, then the Engine is made (its
EngineOptions swap kernels in the model in place: grouped experts and step graphs on a GPU by default, fp8 with
--fp8, nothing with --eager) and W1-W6 run on the model as the engine left it; each section records the kernels.
Warm-up is excluded everywhere; compile and capture times are reported on their own. The floor of a forward pass
is the bytes it must stream (gpu_model.StepBytes) over the measured copy bandwidth. JSON is rewritten after every
workload, so a run cut short still leaves data: DIR/gpu_engine[_variant].json (device, commit). A PNG comes from
bench/gpu/plot_engine.py when matplotlib is installed.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import platform
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import Any

import torch

from bench.lib.engine_bench import Bench, engine_options, model_state
from bench.lib.probes import CompileTimeout, engine_step_probe, hf_generate, step_probe, step_profile
from bench.lib.report import commit
from bench.lib.workloads import (
    ENGINE_WORKLOADS,
    autoregressive,
    engine_workload,
    first_completion,
    save_checkpoint,
)

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_WORKLOADS = ("step", "hf", "W1", "W2", "W3", "W4", "W5", "step-engine", "W6")
ALL_WORKLOADS = (*DEFAULT_WORKLOADS, "hf-compile", "profile", "W7", "W8")
# the order they run in
ORDER = ("step", "hf", "hf-compile", "W1", "W2", "W3", "W4", "W5", "W7", "W8", "step-engine", "profile", "W6")


def process_age_s() -> float | None:
    """Seconds since this process started (Linux /proc), or None."""
    try:
        start_ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return uptime - start_ticks / os.sysconf("SC_CLK_TCK")


def ensure_package() -> None:
    """Make `diffusion_copilot` importable from a plain checkout (pyproject maps engine/ to it), as on a GPU
    image where the project is not installed."""
    with contextlib.suppress(ModuleNotFoundError):
        if importlib.util.find_spec("diffusion_copilot.engine") is not None:
            return
    package = types.ModuleType("diffusion_copilot")
    package.__path__ = []
    sys.modules["diffusion_copilot"] = package
    spec = importlib.util.spec_from_file_location(
        "diffusion_copilot.engine", ROOT / "engine" / "__init__.py", submodule_search_locations=[str(ROOT / "engine")]
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    package.engine = module  # type: ignore[attr-defined]


def device_facts(device: torch.device) -> dict[str, Any]:
    """The machine and library versions for the report."""
    import transformers

    facts: dict[str, Any] = {"torch": torch.__version__, "transformers": transformers.__version__}
    if device.type == "cuda":
        facts["device"] = torch.cuda.get_device_name(device)
        facts["device_memory_GB"] = round(torch.cuda.get_device_properties(device).total_memory / 1e9, 1)
        facts["cuda"] = torch.version.cuda
    else:
        facts["device"] = f"cpu: {platform.processor() or platform.machine()}, {torch.get_num_threads()} thread(s)"
        facts["load_average"] = os.getloadavg()[0]
    return facts


def _gb(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def output_path(args: argparse.Namespace, options: dict[str, Any]) -> Path:
    """DIR/gpu_engine[_first_completion][_tiny][_eager][_fp8]...[_capNgb][_label].json, after the options."""
    name = "gpu_engine"
    name += "_first_completion" if args.first_completion else ""
    name += "_from_checkpoint" if args.first_completion and args.checkpoint else ""
    name += "_save_checkpoint" if args.save_checkpoint else ""
    name += "_tiny" if args.tiny else ""
    name += "_eager" if options.get("eager") else ""
    name += "_fp8" if options.get("fp8") else ""
    name += "_fp8dense" if options.get("fp8_dense") else ""
    name += f"_{args.weights}" if args.weights != "bf16" else ""
    name += "_nographs" if options.get("graphs") is False else ""
    name += f"_cap{args.memory_cap_gb:g}gb" if args.memory_cap_gb else ""
    name += f"_{args.label}" if args.label else ""
    return Path(args.out) / f"{name}.json"


def print_table(report: dict[str, Any]) -> None:
    """The short table: engine workloads, then the model-only and transformers lines."""
    print(f"\n{report.get('device')} | copy {report.get('copy_bandwidth_TBps')} TB/s | commit {report['commit']}")
    print(
        f"{'workload':<24}{'canvas':>7}{'steps':>6}{'p50 ms':>10}{'p90 ms':>10}{'step ms':>9}{'floor ms':>10}"
        f"{'tok/s':>9}{'peak GB':>9}"
    )
    for name, w in report["workloads"].items():
        if "canvas" not in w:
            continue
        floor = w.get("floor_ms", w.get("floor_ms_per_request", 0.0))
        rate = w.get("canvas_tokens_per_s", w.get("aggregate_canvas_tokens_per_s", 0.0))
        label = f"{name} {w['description']}" + (f" x{w['alternatives']}" if w["alternatives"] > 1 else "")
        print(
            f"{label:<24}{w['canvas']:>7}{w['steps']:>6}{w['latency_ms_p50']:>10.1f}{w['latency_ms_p90']:>10.1f}"
            f"{w['step_ms_p50']:>9.2f}{floor:>10.1f}{rate:>9.0f}{_gb(w.get('peak_GB')):>9}"
        )
    for section in ("step", "step-engine", "hf", "hf-compile", "W6"):
        values = report["workloads"].get(section)
        if values and "error" in values:
            print(f"{section}: {values['error']}")
        elif values:
            line = ", ".join(f"{k} {v:.2f}" for k, v in values.items() if k.endswith("_ms") and isinstance(v, float))
            print(f"{section}: {line}")


def main() -> None:
    script_start = time.perf_counter()
    age_at_start = process_age_s()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="bench/results", help="directory of the JSON (default bench/results)")
    parser.add_argument("--workloads", default=",".join(DEFAULT_WORKLOADS), help=f"of {','.join(ALL_WORKLOADS)}")
    parser.add_argument("--hf-compile", action="store_true", help="add generate() with static cache + compile")
    parser.add_argument("--compile-timeout-s", type=int, default=300)
    parser.add_argument("--reps", type=int, default=3, help="timed runs per workload, after one warm-up")
    parser.add_argument("--load-rounds", type=int, default=2, help="W5 rounds of 8 requests")
    parser.add_argument("--prompt-tokens", type=int, default=2048)
    parser.add_argument("--eager", action="store_true", help="engine: stock modules, no graphs (EngineOptions.eager)")
    parser.add_argument("--fp8", action="store_true", help="engine: fp8 expert weights")
    parser.add_argument("--fp8-dense", action="store_true", help="engine: fp8 attention/MLP/SC linears too")
    parser.add_argument(
        "--weights", default="bf16", choices=("bf16", "fp8", "int8", "int4", "nvfp4"), help="weight-only experts"
    )
    parser.add_argument("--no-graphs", action="store_true", help="engine: no CUDA graphs of the denoising step")
    parser.add_argument("--no-grouped-moe", action="store_true", help="engine: stock experts, not grouped")
    parser.add_argument("--engine-option", action="append", default=[], help="EngineOptions KEY=JSON (repeatable)")
    parser.add_argument("--experts-implementation", help="transformers' MoE kernel: grouped_mm, batched_mm, eager")
    parser.add_argument("--memory-cap-gb", type=float, help="cap this process's GPU memory (an RTX-class card)")
    parser.add_argument("--first-completion", action="store_true", help="only time process start to first result")
    parser.add_argument("--checkpoint", help="with --first-completion: load the weights from this directory")
    parser.add_argument("--save-checkpoint", metavar="DIR", help="only build the random model and save it to DIR")
    parser.add_argument("--tiny", action="store_true", help="a tiny model of the same class (CPU development)")
    parser.add_argument("--cpu", action="store_true", help="run on the CPU even where a GPU is visible")
    parser.add_argument("--label", help="suffix of the JSON name")
    args = parser.parse_args()
    asked = {w for w in args.workloads.split(",") if w} | ({"hf-compile"} if args.hf_compile else set())
    unknown = sorted(asked - set(ALL_WORKLOADS))
    if unknown:
        parser.error(f"unknown workloads {unknown}: use {','.join(ALL_WORKLOADS)}")
    # Stock transformers first: the engine, made on first need, swaps kernels in the model in place.
    workloads = [w for w in ORDER if w in asked]
    ensure_package()

    report: dict[str, Any] = {"benchmark": "gpu_engine", "commit": commit(), "args": vars(args), "workloads": {}}
    bench = Bench(args, report, output_path(args, engine_options(args)))
    if bench.device.type == "cpu" and args.tiny:
        torch.set_num_threads(1)  # as load_checkpoint does for small models: faster on small, shared CPUs
    report.update(device_facts(bench.device))
    print(f"{report['device']}; torch {report['torch']}, transformers {report['transformers']}; -> {bench.out}")
    with tempfile.TemporaryDirectory() as scratch:
        if args.save_checkpoint:
            save_checkpoint(bench, Path(scratch), Path(args.save_checkpoint))
            bench.save()
            return
        if args.first_completion:
            checkpoint = Path(args.checkpoint) if args.checkpoint else None
            first_completion(bench, Path(scratch), age_at_start, script_start, checkpoint)
            bench.save()
            return
        if not bench.setup(Path(scratch)):
            bench.save()
            return
        bench.save()
        for name in workloads:
            print(f"--- {name}")
            started = time.perf_counter()
            try:
                if name == "step":
                    record = step_probe(bench)
                elif name in ("hf", "hf-compile"):
                    record = hf_generate(bench, compiled=name == "hf-compile")
                elif name == "step-engine":
                    record = engine_step_probe(bench)
                elif name == "profile":
                    record = step_profile(bench)
                elif name == "W6":
                    record = autoregressive(bench)
                else:
                    record = engine_workload(bench, ENGINE_WORKLOADS[name])
            except (Exception, CompileTimeout) as err:
                record = {"error": f"{type(err).__name__}: {str(err)[:500]}"}
                print(f"{name} failed: {record['error']}")
            record["section_s"] = round(time.perf_counter() - started, 1)
            record["model_state"] = model_state(bench.model, bench.engine)
            report["workloads"][name] = record
            captures = bench.graph_captures()
            if captures != report.get("graph_capture_s", {}):
                report["graph_capture_s"] = captures
                print(f"graph capture (excluded from timings): {captures}")
            if "latency_ms_p50" in record:
                print(f"{name}: p50 {record['latency_ms_p50']:.1f} ms, p90 {record['latency_ms_p90']:.1f} ms")
            bench.save()
    report["total_s"] = round(time.perf_counter() - script_start, 1)
    bench.save()
    print_table(report)
    try:
        from bench.gpu.plot_engine import plot

        print(f"plot: {plot(report, bench.out.with_suffix('.png'))}")
    except ImportError as err:
        print(f"no plot ({err.name} missing): python -m bench.gpu.plot_engine {bench.out}")


if __name__ == "__main__":
    main()
