"""The checks bench/gpu/fastpath_check.py runs on a few layers of the 26B-A4B configuration: one layer's experts
and fp8 linears against the stock modules, decoder steps from a prefilled prompt, a padded canvas through a graph,
and a whole job through the denoising loop with and without graphs. Each returns what it measured.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import torch

from diffusion_copilot.engine import Job
from diffusion_copilot.engine.backends.local.denoise import Denoiser
from diffusion_copilot.engine.backends.local.sampler import SamplerParams
from diffusion_copilot.engine.hf_internals import with_cache
from diffusion_copilot.engine.kernels.agreement import logits_agreement
from diffusion_copilot.engine.kernels.cuda_graphs import StepGraphs
from diffusion_copilot.engine.kernels.fp8 import Fp8Linear
from diffusion_copilot.engine.kernels.grouped_moe import ExpertWeights, Fp8ExpertWeights, GroupedExperts, probe_kernels


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_ms(fn: Callable[[], Any], device: torch.device, reps: int, warmup: int = 2) -> float:
    """Median wall time of `fn` in ms, synchronized on both sides (launch overhead included, warm-up excluded)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        sync(device)
        started = time.perf_counter()
        fn()
        sync(device)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def relative_error(got: torch.Tensor, want: torch.Tensor) -> dict[str, float]:
    diff = got.float() - want.float()
    return {
        "rel_l2": float(diff.norm() / want.float().norm().clamp(min=1e-12)),
        "max_abs": float(diff.abs().max()),
        "max_abs_reference": float(want.float().abs().max()),
    }


def experts_check(model: Any, tokens: int, device: torch.device, reps: int) -> dict[str, Any]:
    """One decoder layer's experts: each path's output against transformers' loop over experts, and its time."""
    layer = model.model.decoder.layers[0]
    stock = layer.experts
    kernels = probe_kernels(model.device, model.dtype)
    hidden = torch.randn(tokens, model.config.text_config.hidden_size, device=device).to(model.dtype)

    def grouped(weights: Any, use_kernel: bool) -> GroupedExperts:
        gate_up, down = weights(stock.gate_up_proj, use_kernel), weights(stock.down_proj, use_kernel)
        return GroupedExperts(gate_up, down, stock.act_fn, stock.num_experts)

    paths = {
        "ours_grouped": grouped(ExpertWeights, kernels.grouped_mm),
        "ours_grouped_reference": grouped(ExpertWeights, False),
        "ours_fp8": grouped(Fp8ExpertWeights, kernels.scaled_grouped_mm),
        "ours_fp8_dequantized": grouped(Fp8ExpertWeights, False),
    }
    with torch.inference_mode():
        _, weights, index = layer.router(hidden)
        model.set_experts_implementation("eager")
        want = stock(hidden, index, weights)

        def measure(fn: Callable[[], torch.Tensor]) -> dict[str, Any]:
            try:
                return {**relative_error(fn(), want), "ms": time_ms(fn, device, reps)}
            except Exception as err:
                return {"error": f"{type(err).__name__}: {str(err)[:200]}"}

        result: dict[str, Any] = {"tokens": tokens, "experts_hit": int(index.unique().numel())}
        result["kernels"] = asdict(kernels)
        for implementation in ("eager", "grouped_mm"):  # the loop, and transformers' own grouped path
            model.set_experts_implementation(implementation)
            result[f"transformers_{implementation}"] = measure(lambda: stock(hidden, index, weights))
        for name, path in paths.items():
            result[name] = measure(lambda p=path: p(hidden, index, weights))
    return result


def linear_check(model: Any, tokens: int, device: torch.device, reps: int) -> dict[str, Any]:
    """fp8 dense linears (attention q_proj, dense-MLP gate_proj) against the model's own."""
    layer = model.model.decoder.layers[0]
    kernels = probe_kernels(model.device, model.dtype)
    x = torch.randn(tokens, model.config.text_config.hidden_size, device=device).to(model.dtype)
    result: dict[str, Any] = {"kernel": kernels.scaled_mm}
    with torch.inference_mode():
        for name, linear in (("q_proj", layer.self_attn.q_proj), ("mlp_gate_proj", layer.mlp.gate_proj)):
            fp8 = Fp8Linear(linear.weight, kernels.scaled_mm)
            result[name] = {
                **relative_error(fp8(x), linear(x)),
                "ms_fp8": time_ms(lambda f=fp8: f(x), device, reps),
                "ms_model_dtype": time_ms(lambda f=linear: f(x), device, reps),
            }
    return result


class Steps:
    """One prefilled prompt and the canvases, self-conditioning logits and positions of each canvas length."""

    def __init__(self, model: Any, prompt: int, canvases: list[int], batch: int, device: torch.device) -> None:
        from transformers import DynamicCache

        self.model = model
        self.batch = batch
        vocab = model.config.text_config.vocab_size
        generator = torch.Generator(device=device).manual_seed(2)
        ids = torch.randint(3, vocab, (1, prompt), generator=generator, device=device)
        with torch.inference_mode():
            self.cache = DynamicCache(config=model.config.get_text_config(decoder=True))
            positions = torch.arange(prompt, dtype=torch.int32, device=device)[None]
            model.model.encoder(input_ids=ids, **with_cache(self.cache), position_ids=positions, use_cache=True)
            if batch > 1:
                self.cache.batch_repeat_interleave(batch)
        self.inputs = {}
        for length in canvases:
            canvas = torch.randint(3, vocab, (batch, length), generator=generator, device=device)
            sc = torch.randn(batch, length, vocab, generator=generator, device=device).to(model.dtype)
            positions = torch.arange(prompt, prompt + length, dtype=torch.int32, device=device)[None]
            self.inputs[length] = (canvas, sc, positions)

    def eager(self, length: int, first_step: bool = False) -> torch.Tensor:
        canvas, sc, positions = self.inputs[length]
        with torch.inference_mode():
            out = self.model(
                decoder_input_ids=canvas,
                self_conditioning_logits=None if first_step else sc,
                **with_cache(self.cache),
                decoder_position_ids=positions,
            )
        logits: torch.Tensor = out.logits
        return logits

    def graphed(self, graphs: StepGraphs, length: int) -> Callable[[bool], torch.Tensor]:
        """The graph step of this canvas length (captured now if new); raises when no graph could be made."""
        canvas, sc, positions = self.inputs[length]
        step = graphs.step_for(self.cache, positions, self.batch)
        if step is None:
            raise RuntimeError(f"no graph for canvas {length} (outside the buckets, or capture failed: see the log)")
        return lambda first_step=False: step(canvas, None if first_step else sc)


def padded_canvas_check(steps: Steps, length: int) -> dict[str, Any]:
    """A canvas shorter than its bucket (padded and masked in the graph) against the eager step."""
    model, batch = steps.model, steps.batch
    canvas, sc, positions = steps.inputs[length]
    short = length - 7
    graphs = StepGraphs(model)
    step = graphs.step_for(steps.cache, positions[:, :short], batch)
    if step is None:
        raise RuntimeError("no graph for the padded canvas")
    with torch.inference_mode():
        eager = model(
            decoder_input_ids=canvas[:, :short],
            self_conditioning_logits=sc[:, :short],
            **with_cache(steps.cache),
            decoder_position_ids=positions[:, :short],
        ).logits
        result = asdict(logits_agreement(eager, step(canvas[:, :short], sc[:, :short])))
    graphs.clear()
    return {"canvas": short, "bucket": length, **result}


def denoiser_check(model: Any, prompt: int, device: torch.device) -> dict[str, Any]:
    """A whole job through the engine's denoising loop, eager and with graphs: step times and how many of the final
    tokens agree (random weights sample noisily, so tiny logit differences can change tokens)."""
    vocab = model.config.text_config.vocab_size
    ids = tuple(torch.randint(3, vocab, (prompt,), generator=torch.Generator().manual_seed(4)).tolist())
    job = Job(prompt_ids=ids, canvas_length=64, max_steps=8, seed=11)
    results: dict[str, Any] = {}
    tokens = {}
    for name, graphs in (("eager", None), ("graphs", StepGraphs(model))):
        denoiser = Denoiser(model, SamplerParams(), graphs=graphs)
        denoiser.run(job)  # warm-up (and capture)
        result = denoiser.run(job)
        if result.error:
            raise RuntimeError(result.error)
        tokens[name] = result.canvases[0].token_ids
        results[name] = {
            "step_ms_median": round(statistics.median(result.timings.step_ms), 2),
            "total_ms": round(result.timings.total_ms, 1),
            "steps": len(result.timings.step_ms),
        }
    same = sum(a == b for a, b in zip(tokens["eager"], tokens["graphs"], strict=False))
    results["tokens_agreeing"] = f"{same}/{max(len(tokens['eager']), len(tokens['graphs']))}"
    return results
