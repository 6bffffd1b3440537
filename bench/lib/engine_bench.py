"""What one run of bench/gpu/engine.py shares: the model with random weights, the engine (made on first need,
since its options swap kernels in the model), the report that grows section by section, and the timing, memory
and floor helpers every section uses.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from bench.lib.random_model import (
    StepBytes,
    build_random_model,
    check_model,
    copy_bandwidth,
    synchronize,
    write_checkpoint_dir,
)


def engine_options(args: argparse.Namespace) -> dict[str, Any]:
    """The `EngineOptions` fields set on the command line (the rest keep the engine's defaults)."""
    options: dict[str, Any] = {}
    if args.eager:
        options["eager"] = True
    if args.fp8:
        options["fp8"] = True
    if args.fp8_dense:
        options["fp8_dense"] = True
    if args.no_graphs:
        options["graphs"] = False
    if args.no_grouped_moe:
        options["grouped_moe"] = False
    for item in args.engine_option:
        key, _, value = item.partition("=")
        options[key] = json.loads(value) if value else True
    return options


def make_engine(loaded: Any, requested: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """An Engine on `loaded` with the requested options it knows (it swaps kernels in the model, in place);
    options this engine does not have are skipped and listed."""
    from diffusion_copilot.engine import Engine

    try:
        from diffusion_copilot.engine.backends.local.options import EngineOptions
    except ImportError:  # an engine from before the GPU fast paths
        EngineOptions = None
    known = {f.name for f in dataclasses.fields(EngineOptions)} if EngineOptions else set()
    used = {k: v for k, v in requested.items() if k in known}
    skipped = sorted(set(requested) - set(used))
    for name in skipped:
        print(f"engine option {name!r}: this engine does not offer it, skipped")
    started = time.perf_counter()
    engine = Engine(loaded, EngineOptions(**used)) if EngineOptions else Engine(loaded)
    synchronize(loaded.model.device)
    options = getattr(engine, "options", None)
    return engine, {
        "requested": requested,
        "skipped": skipped,
        "in_effect": dataclasses.asdict(options) if options is not None else None,
        "setup_s": round(time.perf_counter() - started, 2),  # kernel probes, fp8 quantization
    }


def model_state(model: Any, engine: Any) -> str:
    """The kernels the model runs with now: the stock transformers modules until an engine swaps them."""
    layer = model.model.decoder.layers[0]
    experts = type(layer.experts).__name__ + (" fp8" if getattr(layer.experts, "is_fp8", False) else "")
    state = f"experts {experts}, attention {type(layer.self_attn.q_proj).__name__}"
    state += f", norm {type(layer.input_layernorm).__name__}"
    if engine is None:
        return f"stock transformers ({state})"
    graphs = getattr(engine.denoiser, "graphs", None) is not None
    return f"engine ({state}, denoising-step CUDA graphs {'on' if graphs else 'off'})"


class Bench:
    """One model, one engine, one report that grows workload by workload."""

    def __init__(self, args: argparse.Namespace, report: dict[str, Any], out: Path) -> None:
        self.args = args
        self.report = report
        self.out = out
        self.device = torch.device("cuda" if torch.cuda.is_available() and not args.cpu else "cpu")
        self.rng = random.Random(0)
        self.model: Any = None
        self.loaded: Any = None
        self.engine: Any = None
        self.bytes: StepBytes | None = None
        self.bandwidth = 0.0
        self.vocab = 0

    # --- set-up -----------------------------------------------------------------------------------------------

    def setup(self, scratch: Path) -> bool:
        """Measure bandwidth and build the model (and the engine, under a memory cap); False when over the cap."""
        from transformers import AutoTokenizer
        from transformers.utils import logging as hf_logging

        from diffusion_copilot.engine import LoadedModel, SamplerParams

        hf_logging.set_verbosity_error()
        quick = self.args.first_completion  # only what a real start does: no bandwidth probe, no checks
        if not quick:
            copy_size = (64 << 20) if self.args.tiny else (2 << 30)
            self.bandwidth = copy_bandwidth(self.device, copy_size)
            self.report["copy_bandwidth_TBps"] = round(self.bandwidth / 1e12, 4)
            print(f"copy bandwidth {self.bandwidth / 1e12:.3f} TB/s (read + write of {copy_size >> 20} MiB)")

        started = time.perf_counter()
        directory = write_checkpoint_dir(scratch / "checkpoint", tiny=self.args.tiny)
        dtype = torch.bfloat16 if self.device.type == "cuda" else torch.float32
        self.model = build_random_model(directory, self.device, dtype)
        if self.args.experts_implementation:
            self.model.set_experts_implementation(self.args.experts_implementation)
        tokenizer = AutoTokenizer.from_pretrained(directory)
        synchronize(self.device)
        build_s = time.perf_counter() - started
        facts = {} if quick else check_model(self.model)
        weights = self.args.weights
        if weights != "bf16":  # weight-only experts on their Triton kernels, as a quantized checkpoint loads
            from diffusion_copilot.engine.weights.quantized_model import quantize_in_place

            started = time.perf_counter()
            quantize_in_place(self.model, weights, "bf16")
            synchronize(self.device)
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            facts["quantize_s"] = round(time.perf_counter() - started, 1)
        self.vocab = int(self.model.config.text_config.vocab_size)
        self.report["model"] = {
            "config": "tiny (same class)" if self.args.tiny else "DiffusionGemma 26B-A4B (diffusiongemma.md §2)",
            "weights": "random (initialize_weights)",
            "dtype": str(dtype).removeprefix("torch."),
            "build_s": round(build_s, 1),
            "experts_implementation": self.model.config.get_text_config()._experts_implementation,
            "attn_implementation": self.model.config.get_text_config()._attn_implementation,
            **facts,
        }
        print(f"built model in {build_s:.1f} s: {json.dumps(facts)}")
        params = SamplerParams.from_generation_config(self.model.generation_config)
        self.loaded = LoadedModel(self.model, tokenizer, params, str(directory), has_random_weights=True)
        self.bytes = StepBytes.of(self.model)
        self.report["model"]["memory_GB"] = self.allocated_gb()
        self.report["step_bytes"] = {"stock": vars(self.bytes)}
        if self.args.memory_cap_gb is None:
            return True
        self.ensure_engine()  # the cap is for the model as the engine runs it (fp8 weights hold less)
        return self._apply_memory_cap()

    def ensure_engine(self) -> None:
        """Make the engine on first need: it swaps kernels in the model, so stock baselines run before it."""
        if self.engine is not None:
            return
        self.engine, self.report["engine"] = make_engine(self.loaded, engine_options(self.args))
        self.bytes = StepBytes.of(self.model)  # fp8 weights stream fewer bytes
        self.report["engine"]["memory_GB"] = self.allocated_gb()
        self.report["engine"]["model_state"] = model_state(self.model, self.engine)
        self.report.setdefault("step_bytes", {})["engine"] = vars(self.bytes)
        print(f"engine ready in {self.report['engine']['setup_s']} s: {self.report['engine']['model_state']}")

    def graph_captures(self) -> dict[str, float]:
        """Seconds each denoising-step CUDA graph took to capture, by shape."""
        graphs = getattr(self.engine, "denoiser", None) and getattr(self.engine.denoiser, "graphs", None)
        captured = getattr(graphs, "capture_s", {}) or {}
        return {f"batch{s.batch}_canvas{s.canvas}_prefix{s.prefix}": round(t, 3) for s, t in captured.items()}

    def _apply_memory_cap(self) -> bool:
        """Cap this process's GPU memory at --memory-cap-gb; False when the model alone is over it."""
        cap = self.args.memory_cap_gb
        if cap is None or self.device.type != "cuda":
            return True
        total = torch.cuda.get_device_properties(self.device).total_memory
        resident = torch.cuda.memory_allocated(self.device)
        self.report["memory_cap_GB"] = cap
        # The cap applies from here on: building random weights in bf16 first is an artefact of this
        # benchmark that loading a real (fp8) checkpoint would not have.
        if resident > cap * 1e9:
            self.report["error"] = f"the model holds {resident / 1e9:.1f} GB, over the {cap} GB cap"
            print(self.report["error"])
            return False
        torch.cuda.empty_cache()  # the bf16 build's cached blocks must not count against the cap
        torch.cuda.set_per_process_memory_fraction(min(1.0, cap * 1e9 / total), torch.cuda.current_device())
        print(f"memory capped at {cap} GB ({resident / 1e9:.1f} GB resident)")
        return True

    # --- helpers ----------------------------------------------------------------------------------------------

    def allocated_gb(self) -> float | None:
        return round(torch.cuda.memory_allocated(self.device) / 1e9, 2) if self.device.type == "cuda" else None

    @contextlib.contextmanager
    def peak(self, record: dict[str, Any]) -> Iterator[None]:
        """Record the peak GPU memory allocated while the block runs."""
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        yield
        if self.device.type == "cuda":
            record["peak_GB"] = round(torch.cuda.max_memory_allocated(self.device) / 1e9, 2)

    def prompt(self) -> tuple[int, ...]:
        """A fresh random prompt, so that no two requests share a prefix unless a workload says so."""
        return tuple(self.rng.randrange(10, self.vocab) for _ in range(self.args.prompt_tokens))

    def timed(self, fn: Callable[[], Any], reps: int, warmup: int = 1) -> list[float]:
        """Milliseconds of `reps` calls after `warmup` untimed ones, synchronised with the device."""
        for _ in range(warmup):
            fn()
        times = []
        for _ in range(reps):
            synchronize(self.device)
            started = time.perf_counter()
            fn()
            synchronize(self.device)
            times.append((time.perf_counter() - started) * 1000)
        return times

    def floor_ms(self, tokens: int, cached: int, canvas_tokens: int, steps: int) -> float:
        """Weight-streaming floor of one request: one encoder pass over its new prompt tokens, then the steps."""
        assert self.bytes is not None
        streamed = steps * self.bytes.decoder_step(canvas_tokens, cached + tokens)
        if tokens:
            streamed += self.bytes.encoder_pass(tokens, cached)
        return streamed / self.bandwidth * 1000

    def save(self) -> None:
        """Rewrite the JSON, so that a run cut short still leaves every finished section."""
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.out.write_text(json.dumps(self.report, indent=2) + "\n")
