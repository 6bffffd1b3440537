"""Model-level measurements for bench/gpu/engine.py: one decoder forward (stock transformers, and the engine's own
without its sampler) and the prefill against their weight-streaming floors, and transformers' generate() with a
dynamic cache or with a static cache + torch.compile (time-boxed).
"""

from __future__ import annotations

import signal
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from bench.lib.engine_bench import Bench
from bench.lib.random_model import synchronize
from diffusion_copilot.engine.hf_internals import output_cache, with_cache


class CompileTimeout(BaseException):
    """Raised by SIGALRM to stop torch.compile; a BaseException so that no `except Exception` swallows it."""


@torch.inference_mode()
def step_probe(bench: Bench) -> dict[str, Any]:
    """One decoder forward against a 2,048-token prefix, and the prefill itself, model only."""
    from transformers import DynamicCache

    assert bench.bytes is not None
    model, text = bench.model, bench.model.config.get_text_config(decoder=True)
    length = bench.args.prompt_tokens
    prompt = torch.tensor([bench.prompt()], device=bench.device)

    def prefill() -> Any:
        cache = DynamicCache(config=text)
        positions = torch.arange(length, device=bench.device)[None]
        return output_cache(model.model.encoder(input_ids=prompt, position_ids=positions, **with_cache(cache)))

    record: dict[str, Any] = {}
    with bench.peak(record):
        times = bench.timed(prefill, bench.args.reps)
        record["prefill_ms"] = statistics.median(times)
        record["prefill_floor_ms"] = bench.bytes.encoder_pass(length, 0) / bench.bandwidth * 1000
        cache = prefill()
        for batch, canvas in ((1, 64), (1, 256), (4, 64)):
            canvas_ids = torch.randint(10, bench.vocab, (batch, canvas), device=bench.device)
            positions = torch.arange(length, length + canvas, device=bench.device)[None]
            sc_logits = torch.randn(batch, canvas, bench.vocab, device=bench.device, dtype=bench.model.dtype)
            step_cache = cache
            if batch > 1:
                step_cache = prefill()
                step_cache.batch_repeat_interleave(batch)

            def step(ids: Any = canvas_ids, pos: Any = positions, sc: Any = sc_logits, kv: Any = step_cache) -> Any:
                return model(
                    decoder_input_ids=ids, self_conditioning_logits=sc, **with_cache(kv), decoder_position_ids=pos
                )

            touched = experts_touched(bench, step)
            times = bench.timed(step, bench.args.reps + 2)
            key = f"C{canvas}" if batch == 1 else f"{batch}xC{canvas}"
            record[f"decoder_{key}_ms"] = statistics.median(times)
            record[f"decoder_{key}_floor_ms"] = (
                bench.bytes.decoder_step(batch * canvas, length, touched) / bench.bandwidth * 1000
            )
            record[f"decoder_{key}_experts_touched"] = touched
            print(
                f"decoder step {key}: {record[f'decoder_{key}_ms']:.2f} ms, floor "
                f"{record[f'decoder_{key}_floor_ms']:.2f} ms, experts touched/layer {touched}"
            )
    print(f"prefill {length} tokens: {record['prefill_ms']:.1f} ms (floor {record['prefill_floor_ms']:.2f} ms)")
    return record


@torch.inference_mode()
def engine_step_probe(bench: Bench) -> dict[str, Any]:
    """The engine's own decoder forward (a replayed graph where it has one), without the sampler, against a
    2,048-token prefix: what a step costs before sampling. Uses the Denoiser's internals."""
    assert bench.bytes is not None
    bench.ensure_engine()
    denoiser = bench.engine.denoiser
    length = bench.args.prompt_tokens
    record: dict[str, Any] = {}
    with bench.peak(record):
        for batch, canvas in ((1, 64), (1, 256), (4, 64)):
            denoiser.prefix_cache.clear()
            cache, _ = denoiser.prefill.one(bench.prompt(), batch)
            positions = torch.arange(length, length + canvas, dtype=torch.int32, device=bench.device)[None]
            forward = denoiser.decoder_step(cache, positions, batch)
            canvas_ids = torch.randint(10, bench.vocab, (batch, canvas), device=bench.device)
            sc_logits = torch.randn(batch, canvas, bench.vocab, device=bench.device, dtype=denoiser.embed_dtype)

            def step(f: Any = forward, ids: torch.Tensor = canvas_ids, sc: torch.Tensor = sc_logits) -> Any:
                return f(ids, sc)

            times = bench.timed(step, bench.args.reps + 2)
            key = f"C{canvas}" if batch == 1 else f"{batch}xC{canvas}"
            record[f"decoder_{key}_ms"] = statistics.median(times)
            record[f"decoder_{key}_floor_ms"] = (
                bench.bytes.decoder_step(batch * canvas, length) / bench.bandwidth * 1000
            )
            print(
                f"engine decoder forward {key}: {record[f'decoder_{key}_ms']:.2f} ms "
                f"(floor {record[f'decoder_{key}_floor_ms']:.2f} ms)"
            )
    denoiser.prefix_cache.clear()
    return record


def experts_touched(bench: Bench, step: Callable[[], Any]) -> float | None:
    """Mean distinct experts per decoder layer one step hits with these random weights (None: no hook)."""
    counts: list[int] = []

    def hook(module: Any, args: tuple[Any, ...], output: Any) -> None:
        if len(args) > 1 and isinstance(args[1], torch.Tensor):
            counts.append(int(torch.unique(args[1]).numel()))

    layers = bench.model.model.decoder.layers
    handles = [layer.experts.register_forward_hook(hook) for layer in layers if hasattr(layer, "experts")]
    try:
        step()
    finally:
        for handle in handles:
            handle.remove()
    return statistics.mean(counts) if counts else None


# --- transformers generate() ------------------------------------------------------------------------------


def hf_generate(bench: Bench, compiled: bool) -> dict[str, Any]:
    """transformers' generate() at 12 steps; `compiled`: static cache + torch.compile, time-boxed."""
    prompt = torch.tensor([bench.prompt()], device=bench.device)
    record: dict[str, Any] = {}
    canvases = (64,) if compiled else (64, 256)
    for canvas in canvases:
        bench.model.config.canvas_length = canvas
        kwargs: dict[str, Any] = {"max_new_tokens": canvas, "max_denoising_steps": 12}
        if compiled:
            kwargs["cache_implementation"] = "static"

        def generate(kw: dict[str, Any] = kwargs) -> Any:
            return bench.model.generate(prompt, **kw)

        key = f"{'static_compiled' if compiled else 'dynamic'}_C{canvas}"
        with bench.peak(record):
            if compiled:
                first_ms = time_boxed(bench, generate, bench.args.compile_timeout_s)
                record["compile_first_call_ms"] = first_ms
                print(f"compile: generate static+compile first call {first_ms / 1000:.1f} s")
            times = bench.timed(generate, bench.args.reps, warmup=0 if compiled else 1)
        record[f"{key}_ms"] = statistics.median(times)
        record[f"{key}_runs_ms"] = times
        print(f"HF generate {key}: median {record[f'{key}_ms']:.1f} ms {[round(t) for t in times]}")
    bench.model.config.canvas_length = 256
    return record


def time_boxed(bench: Bench, fn: Callable[[], Any], seconds: int) -> float:
    """Milliseconds `fn` took; raises CompileTimeout after `seconds` (SIGALRM, main thread)."""

    def expire(signum: int, frame: Any) -> None:
        raise CompileTimeout(f"still compiling after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        started = time.perf_counter()
        fn()
        synchronize(bench.device)
        return (time.perf_counter() - started) * 1000
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@torch.inference_mode()
def step_profile(bench: Bench, replays: int = 10, top: int = 30) -> dict[str, Any]:
    """Where the engine's decoder forward (canvas 64, 2,048-token prefix) spends its GPU time: the kernels of
    `replays` forwards under torch.profiler, summed by name, per forward; and the GPU-busy share of the wall."""
    from torch.profiler import ProfilerActivity, profile

    if bench.device.type != "cuda":
        raise RuntimeError("the kernel profile needs a CUDA device")
    bench.ensure_engine()
    denoiser = bench.engine.denoiser
    length, canvas = bench.args.prompt_tokens, 64
    denoiser.prefix_cache.clear()
    cache, _ = denoiser.prefill.one(bench.prompt(), 1)
    positions = torch.arange(length, length + canvas, dtype=torch.int32, device=bench.device)[None]
    forward = denoiser.decoder_step(cache, positions, 1)
    canvas_ids = torch.randint(10, bench.vocab, (1, canvas), device=bench.device)
    sc_logits = torch.randn(1, canvas, bench.vocab, device=bench.device, dtype=denoiser.embed_dtype)
    wall = statistics.median(bench.timed(lambda: forward(canvas_ids, sc_logits), replays))
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(replays):
            forward(canvas_ids, sc_logits)
        synchronize(bench.device)
    kernels: dict[str, list[float]] = {}
    for event in prof.events():
        if event.device_type == torch.autograd.DeviceType.CUDA:
            kernels.setdefault(event.name, []).append(event.time_range.elapsed_us())
    busy_ms = sum(sum(times) for times in kernels.values()) / replays / 1000
    ranked = sorted(kernels.items(), key=lambda item: -sum(item[1]))
    record: dict[str, Any] = {
        "forward_ms": wall,
        "kernel_ms_per_forward": busy_ms,
        "kernels_per_forward": sum(len(times) for times in kernels.values()) / replays,
        "top_kernels": [
            {"name": name[:160], "ms_per_forward": sum(times) / replays / 1000, "count": len(times) / replays}
            for name, times in ranked[:top]
        ],
    }
    denoiser.prefix_cache.clear()
    print(
        f"profile C{canvas}: forward {wall:.2f} ms, kernels {busy_ms:.2f} ms busy, "
        f"{record['kernels_per_forward']:.0f} kernels per forward"
    )
    for item in record["top_kernels"][:top]:
        print(f"  {item['ms_per_forward']:7.3f} ms  x{item['count']:5.0f}  {item['name'][:110]}")
    return record
