"""The engine workloads of bench/gpu/engine.py (W1-W4 through Engine.run as a server calls it, W5 through
Engine.run_batch), the autoregressive baseline on the same weights (W6) and the time from process start to a first
completion.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from bench.lib.autoregressive import graph_matches_eager, time_ar
from bench.lib.engine_bench import Bench
from bench.lib.random_model import check_model, synchronize
from bench.lib.report import percentile

KEYSTROKE_TOKENS = 32  # prompt tokens the previous request had not seen


@dataclass(frozen=True)
class Workload:
    """One engine workload: every request has a 2,048-token prompt."""

    name: str
    description: str
    canvas: int
    steps: int
    alternatives: int = 1
    keystroke: bool = False  # the previous request saw all but the last KEYSTROKE_TOKENS prompt tokens
    requests: int = 1  # > 1: that many requests with different prompts arrive together
    edit: bool = False  # a next-edit job: the canvas starts from the window's text (here random ids), not noise


ENGINE_WORKLOADS = {
    "W1": Workload("W1", "keystroke", 64, 12, keystroke=True),
    "W2": Workload("W2", "cold", 64, 12),
    "W3": Workload("W3", "block", 256, 16, keystroke=True),
    "W4": Workload("W4", "alternatives", 64, 12, alternatives=4, keystroke=True),
    "W5": Workload("W5", "load", 64, 12, requests=8),
    "W7": Workload("W7", "completion 128", 128, 12, keystroke=True),
    "W8": Workload("W8", "edit 128", 128, 12, keystroke=True, edit=True),
}


def run(bench: Bench, job: Any) -> Any:
    """`Engine.run`, as a server calls it; an error result raises, so the section records it."""
    bench.ensure_engine()
    result = bench.engine.run(job)
    if result.error:
        raise RuntimeError(result.error)
    return result


def request(bench: Bench, work: Workload, seed: int) -> tuple[float, Any]:
    """One request of `work` (after the untimed previous keystroke, if any): wall ms and its JobResult."""
    from diffusion_copilot.engine import Job

    prompt = bench.prompt()
    bench.ensure_engine()
    bench.engine.denoiser.prefix_cache.clear()
    if work.keystroke:  # the previous keystroke's request: it leaves its prefix in the cache
        run(bench, Job(prompt_ids=prompt[:-KEYSTROKE_TOKENS], canvas_length=work.canvas, max_steps=1, seed=seed))
    window = None
    if work.edit:  # as engine/prompt/edit.py seeds it: the window's tokens, partly renoised (random ids here)
        window = tuple(
            torch.randint(3, bench.vocab, (work.canvas,), generator=torch.Generator().manual_seed(seed)).tolist()
        )
    job = Job(
        prompt_ids=prompt,
        canvas_length=work.canvas,
        max_steps=work.steps,
        alternatives=work.alternatives,
        seed_canvas=window,
        seed=seed,
    )
    synchronize(bench.device)
    started = time.perf_counter()
    result = run(bench, job)
    return (time.perf_counter() - started) * 1000, result


def engine_workload(bench: Bench, work: Workload) -> dict[str, Any]:
    """One warm-up request, then `--reps` timed ones: latency, prefill, per-step time, floor, peak memory."""
    if work.requests > 1:
        return load_workload(bench, work)
    record: dict[str, Any] = {"description": work.description, **_shape(work)}
    with bench.peak(record):
        request(bench, work, seed=0)  # warm-up
        runs = [request(bench, work, seed=1 + i) for i in range(bench.args.reps)]
    latencies = [ms for ms, _ in runs]
    results = [r for _, r in runs]
    timings = results[-1].timings
    steps_run = statistics.median(len(r.timings.step_ms) for r in results)
    tokens = work.canvas * work.alternatives
    record.update(
        latency_ms=latencies,
        latency_ms_p50=statistics.median(latencies),
        latency_ms_p90=percentile(latencies, 0.9),
        prefill_ms_p50=statistics.median(r.timings.prefill_ms for r in results),
        step_ms_p50=statistics.median(ms for r in results for ms in r.timings.step_ms),
        steps_run=steps_run,
        cached_tokens=timings.cached_tokens,
        prefill_tokens=timings.prefill_tokens,
        canvas_tokens_per_s=tokens / (statistics.median(latencies) / 1000),
        finish_reason=str(results[-1].finish_reason),
        floor_ms=bench.floor_ms(timings.prefill_tokens, timings.cached_tokens, tokens, int(steps_run)),
        step_floor_ms=bench.floor_ms(0, bench.args.prompt_tokens, tokens, 1),
    )
    return record


def load_workload(bench: Bench, work: Workload) -> dict[str, Any]:
    """`work.requests` requests with different prompts arriving together, handed to `Engine.run_batch` as one
    batch: each prompt is prefilled on its own, then all canvases share one decoder forward per step. A request's
    latency is its queue time plus its time in the batch (all arrive at the batch's start)."""
    from diffusion_copilot.engine import Job

    record: dict[str, Any] = {"description": work.description, "requests": work.requests, **_shape(work)}

    def batch(seed: int) -> tuple[float, list[Any]]:
        bench.engine.denoiser.prefix_cache.clear()
        jobs = [
            Job(prompt_ids=bench.prompt(), canvas_length=work.canvas, max_steps=work.steps, seed=seed + i)
            for i in range(work.requests)
        ]
        synchronize(bench.device)
        t0 = time.perf_counter()
        results = bench.engine.run_batch(jobs)
        wall = (time.perf_counter() - t0) * 1000
        errors = [r.error for r in results if r.error]
        if errors:
            raise RuntimeError(errors[0])
        return wall, results

    latencies: list[float] = []
    walls: list[float] = []
    prefills: list[float] = []
    steps: list[float] = []
    bench.ensure_engine()
    with bench.peak(record):
        batch(seed=0)  # warm-up: captures the batched step's graph
        for round_index in range(bench.args.load_rounds):
            wall, results = batch(seed=100 * (round_index + 1))
            walls.append(wall)
            latencies += [r.timings.queue_ms + r.timings.total_ms for r in results]
            prefills += [r.timings.prefill_ms for r in results]
            steps += list(results[0].timings.step_ms)  # the batch's steps; every job saw the same ones
    tokens = work.requests * work.canvas
    wall = statistics.median(walls)
    record.update(
        latency_ms=latencies,
        latency_ms_p50=statistics.median(latencies),
        latency_ms_p90=percentile(latencies, 0.9),
        wall_ms_p50=wall,
        aggregate_canvas_tokens_per_s=tokens / (wall / 1000),
        prefill_ms_p50=statistics.median(prefills),
        step_ms_p50=statistics.median(steps),
        batching=f"Engine.run_batch: {work.requests} prompts prefilled one by one, canvases stepped together",
        floor_ms_per_request=bench.floor_ms(bench.args.prompt_tokens, 0, work.canvas, work.steps),
        step_floor_ms=bench.floor_ms(0, bench.args.prompt_tokens, work.canvas, 1),
    )
    one = bench.report["workloads"].get("W2", {})  # one cold request of the same shape, in this run
    if "canvas_tokens_per_s" in one:
        record["throughput_over_one_stream"] = record["aggregate_canvas_tokens_per_s"] / one["canvas_tokens_per_s"]
        record["latency_p50_over_one_stream"] = record["latency_ms_p50"] / one["latency_ms_p50"]
    return record


def autoregressive(bench: Bench) -> dict[str, Any]:
    """W6: greedy decoding of 64 and 256 tokens, eager and (on a GPU) from one CUDA graph."""
    assert bench.bytes is not None
    length = bench.args.prompt_tokens
    record: dict[str, Any] = {
        "description": "autoregressive, static cache, greedy",
        "prompt": length,
        "token_floor_ms": bench.bytes.ar_token(length) / bench.bandwidth * 1000,
    }
    modes = ["eager"] + (["cuda_graph"] if bench.device.type == "cuda" else [])
    for mode in modes:
        graphs = mode == "cuda_graph"
        with bench.peak(record):
            try:
                if graphs:
                    prompt = torch.tensor([bench.prompt()], device=bench.device)
                    record["cuda_graph_matches_eager"] = graph_matches_eager(bench.model, prompt)
                prompt = torch.tensor([bench.prompt()], device=bench.device)
                time_ar(bench.model, prompt, 8, graphs)  # warm-up
                for count in (64, 256):
                    reps = 1 if (count == 256 and not graphs) else bench.args.reps
                    runs = [time_ar(bench.model, prompt, count, graphs) for _ in range(reps)]
                    key = f"{mode}_{count}"
                    record[f"{key}_token_ms"] = statistics.median(r["token_ms"] for r in runs)
                    record[f"{key}_decode_ms"] = statistics.median(r["decode_ms"] for r in runs)
                    record[f"{key}_prefill_ms"] = statistics.median(r["prefill_and_capture_ms"] for r in runs)
                    record[f"{key}_tokens_per_s"] = 1000 / record[f"{key}_token_ms"]
                    print(
                        f"AR {mode} {count} tokens: {record[f'{key}_decode_ms']:.0f} ms "
                        f"({record[f'{key}_token_ms']:.2f} ms/token, floor {record['token_floor_ms']:.2f}); "
                        f"prefill{' + capture' if graphs else ''} {record[f'{key}_prefill_ms']:.0f} ms"
                    )
            except Exception as err:  # a failed capture must not lose the rest of the run
                record[f"{mode}_error"] = f"{type(err).__name__}: {str(err)[:300]}"
                print(f"AR {mode} failed: {record[f'{mode}_error']}")
        record[f"{mode}_peak_GB"] = record.pop("peak_GB", None)
    return record


def first_completion(
    bench: Bench, scratch: Path, age_at_start: float | None, script_start: float, checkpoint: Path | None = None
) -> None:
    """From process start to the first finished W2-cold request: with the random weights built in place, or
    loaded from `checkpoint` by the engine's own loader (`load_checkpoint`, as for the real checkpoint)."""
    from diffusion_copilot.engine import Job, load_checkpoint

    memory: dict[str, Any] = {}
    with bench.peak(memory):
        if checkpoint is None:
            if not bench.setup(scratch):
                return
        else:
            bench.loaded = load_checkpoint(str(checkpoint))
            bench.model = bench.loaded.model
            bench.vocab = int(bench.model.config.text_config.vocab_size)
        bench.ensure_engine()
        synchronize(bench.device)
        ready = time.perf_counter()
        work = ENGINE_WORKLOADS["W2"]
        result = run(bench, Job(prompt_ids=bench.prompt(), canvas_length=work.canvas, max_steps=work.steps, seed=0))
        done = time.perf_counter()
    since_start = done - script_start + (age_at_start or 0.0)
    if checkpoint is not None:
        bench.report["model"] = check_model(bench.model)  # encoder and decoder must share their weights once loaded
    bench.report["first_completion"] = {
        "request": "W2 cold: prompt 2,048, canvas 64, 12 steps",
        "weights": "random, built in place" if checkpoint is None else f"loaded from {checkpoint} (safetensors)",
        "process_start_to_first_completion_s": round(since_start, 2),
        "process_age_at_script_start_s": age_at_start,
        "script_start_to_engine_ready_s": round(ready - script_start, 2),
        "first_request_ms": round((done - ready) * 1000, 1),
        "first_request_steps": len(result.timings.step_ms),
        "graph_capture_s": bench.graph_captures(),  # inside first_request_ms: a real first request pays it too
        **memory,
    }
    print(f"first completion {since_start:.1f} s after process start: {bench.report['first_completion']}")


def save_checkpoint(bench: Bench, scratch: Path, directory: Path) -> None:
    """Build the random model and save it as a checkpoint directory (sharded safetensors, config, generation
    config, tokenizer), so that another process can load it the way users load the real one."""
    import shutil

    from diffusion_copilot.engine.weights.checkpoint import RANDOM_WEIGHTS_MARKER

    if not bench.setup(scratch):
        return
    started = time.perf_counter()
    bench.model.save_pretrained(directory, max_shard_size="5GB")
    for source in (scratch / "checkpoint").glob("tokenizer*"):
        shutil.copy(source, directory / source.name)
    (directory / RANDOM_WEIGHTS_MARKER).write_text("random weights (bench/gpu/engine.py --save-checkpoint)\n")
    size = sum(path.stat().st_size for path in directory.glob("*.safetensors"))
    bench.report["saved_checkpoint"] = {
        "directory": str(directory),
        "safetensors_GB": round(size / 1e9, 2),
        "save_s": round(time.perf_counter() - started, 1),
    }
    print(f"saved {size / 1e9:.1f} GB of safetensors to {directory} in {time.perf_counter() - started:.1f} s")


def _shape(work: Workload) -> dict[str, Any]:
    """The fields every workload record starts with."""
    return {"canvas": work.canvas, "steps": work.steps, "alternatives": work.alternatives}
