"""The engine's GPU fast paths checked and timed on a few layers of the 26B-A4B configuration with random weights:
grouped experts (bf16, fp8) against the stock transformers experts, CUDA-graph steps against eager steps, and the
decoder step time of each path.

Usage: python -m bench.gpu.fastpath_check [--layers 6] [--prompt 2048] [--canvas 64 256] [--out FILE]
       python -m bench.gpu.fastpath_check --tiny   # a small model, for a smoke run on the CPU

Every check runs on its own: a failure is printed and recorded, and the rest still run. Warm-up runs are excluded
from timings; graph capture is reported on its own line. Prints a table and writes JSON with the device and commit.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from bench.lib.fastpath_checks import (
    Steps,
    denoiser_check,
    experts_check,
    linear_check,
    padded_canvas_check,
    time_ms,
)
from bench.lib.random_model import FULL_TEXT, TINY_TEXT, TINY_VISION  # the text layer count is set per run
from bench.lib.report import commit
from diffusion_copilot.engine.kernels.agreement import fp8_agreement, logits_agreement
from diffusion_copilot.engine.kernels.compiled_layers import install_compiled_layers
from diffusion_copilot.engine.kernels.cuda_graphs import StepGraphs
from diffusion_copilot.engine.kernels.fused_norm import install_fused_norms
from diffusion_copilot.engine.kernels.grouped_moe import install_fp8_linears, install_grouped_experts


class Run:
    """Results, timings and errors of one run; each check runs alone and never stops the others."""

    def __init__(self) -> None:
        self.checks: dict[str, Any] = {}
        self.step_ms: dict[str, dict[int, float]] = {}
        self.capture_s: dict[str, float] = {}
        self.errors: dict[str, str] = {}

    def attempt(self, name: str, fn: Callable[[], Any]) -> Any:
        """fn(), or None after printing and recording why it failed."""
        started = time.perf_counter()
        try:
            value = fn()
        except Exception as err:
            first_line = str(err).strip().splitlines()[0][:300] if str(err).strip() else ""
            self.errors[name] = f"{type(err).__name__}: {first_line}"
            print(f"[{name}] FAILED: {self.errors[name]}", file=sys.stderr, flush=True)
            traceback.print_exc(file=sys.stderr)
            return None
        print(f"[{name}] done in {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
        return value

    def check(self, name: str, fn: Callable[[], Any]) -> Any:
        """`attempt`, keeping the result in the report."""
        value = self.attempt(name, fn)
        if value is not None:
            self.checks[name] = value
        return value


def build_model(layers: int, tiny: bool, device: torch.device, dtype: torch.dtype) -> Any:
    """A randomly initialised DiffusionGemmaForBlockDiffusion on `device`, tied weights allocated once."""
    from transformers import DiffusionGemmaConfig, DiffusionGemmaForBlockDiffusion, DiffusionGemmaTextConfig
    from transformers.models.gemma4.configuration_gemma4 import Gemma4VisionConfig

    text = dict(TINY_TEXT if tiny else FULL_TEXT)
    text["num_hidden_layers"] = layers
    # The released pattern: 5 sliding layers, then a full one; the last layer is always full.
    text["layer_types"] = [
        "full_attention" if i % 6 == 5 or i == layers - 1 else "sliding_attention" for i in range(layers)
    ]
    vision = Gemma4VisionConfig(**TINY_VISION)
    config = DiffusionGemmaConfig(
        text_config=DiffusionGemmaTextConfig(**text).to_dict(), vision_config=vision.to_dict(), canvas_length=256
    )
    torch.manual_seed(0)
    default_dtype = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device("meta"):
            model = DiffusionGemmaForBlockDiffusion(config)
    finally:
        torch.set_default_dtype(default_dtype)
    shared: dict[int, torch.nn.Parameter] = {}  # one real tensor per tied group
    for module in model.modules():
        for name, param in list(module._parameters.items()):
            if param is not None:
                if id(param) not in shared:
                    shared[id(param)] = torch.nn.Parameter(torch.empty_like(param, device=device), requires_grad=False)
                module._parameters[name] = shared[id(param)]
        for name, buffer in list(module._buffers.items()):
            if buffer is not None and buffer.device.type == "meta":  # NaN shows any buffer init leaves alone
                fill = float("nan") if buffer.is_floating_point() else 0
                module._buffers[name] = torch.full_like(buffer, fill, device=device)
        module.__dict__.pop("_is_hf_initialized", None)
    with torch.no_grad():
        model.initialize_weights()
        for module in model.modules():  # transformers' init sets only the decoder layers' scalars
            if isinstance(getattr(module, "layer_scalar", None), torch.Tensor):
                module.layer_scalar.fill_(1.0)
    return model.eval()


def model_facts(model: Any) -> dict[str, Any]:
    unique = {id(p): p for p in model.parameters()}
    buffers = [b for b in model.buffers() if b.is_floating_point()]
    encoder = model.model.encoder.language_model.layers[0].self_attn.q_proj.weight
    decoder = model.model.decoder.layers[0].self_attn.q_proj.weight
    return {
        "parameters_B": round(sum(p.numel() for p in unique.values()) / 1e9, 3),
        "weights_GB": round(sum(p.numel() * p.element_size() for p in unique.values()) / 1e9, 2),
        "encoder_decoder_tied": encoder.data_ptr() == decoder.data_ptr(),
        "weights_finite": all(bool(torch.isfinite(p).all()) for p in unique.values()),
        "buffers_finite": all(bool(torch.isfinite(b).all()) for b in buffers),
    }


def time_path(run: Run, steps: Steps, name: str, canvases: list[int], device: torch.device, reps: int) -> None:
    """Eager decoder-step time of the model as it is now."""
    for length in canvases:
        run.step_ms.setdefault(name, {})[length] = time_ms(lambda n=length: steps.eager(n), device, reps)


def time_graphs(run: Run, steps: Steps, name: str, canvases: list[int], device: torch.device, reps: int) -> StepGraphs:
    """Capture the model as it is now and time its replays; also check the replays against eager steps."""
    graphs = StepGraphs(steps.model)
    agreement: dict[str, Any] = {}
    for length in canvases:
        step = steps.graphed(graphs, length)
        with torch.inference_mode():
            for first_step in (False, True):
                key = f"C{length}" + ("_first_step" if first_step else "")
                agreement[key] = asdict(logits_agreement(steps.eager(length, first_step), step(first_step)))
        run.step_ms.setdefault(name, {})[length] = time_ms(lambda s=step: s(False), device, reps)
    run.capture_s[name] = round(sum(graphs.capture_s.values()), 2)
    run.checks[f"{name}_vs_eager"] = agreement
    return graphs


def check_all(run: Run, model: Any, args: argparse.Namespace, device: torch.device) -> None:
    """Every check and timing in order: the stock model, then grouped bf16 experts, then fp8 (the swaps stay)."""
    canvases, reps = list(args.canvas), args.reps
    run.check("model", lambda: model_facts(model))
    run.check("experts_layer", lambda: experts_check(model, max(canvases) * args.batch, device, reps))
    run.check("fp8_linear", lambda: linear_check(model, max(canvases) * args.batch, device, reps))
    steps = run.attempt("prefill", lambda: Steps(model, args.prompt, canvases, args.batch, device))
    if steps is None:
        return

    def against(reference: dict[int, torch.Tensor]) -> dict[str, Any]:
        return {f"C{n}": asdict(logits_agreement(reference[n], steps.eager(n))) for n in canvases}

    def timed(name: str, repeats: int = reps) -> None:
        run.attempt(f"time_{name}", lambda: time_path(run, steps, name, canvases, device, repeats))

    def graphed(name: str) -> None:
        graphs = run.attempt(name, lambda: time_graphs(run, steps, name, canvases, device, reps))
        if graphs is not None:
            graphs.clear()  # graphs point at the weights, which the swaps below replace

    run.attempt("transformers_loop", lambda: model.set_experts_implementation("eager"))
    reference = run.attempt("reference_logits", lambda: {n: steps.eager(n).float() for n in canvases})
    timed("transformers_loop", repeats=3)
    if run.attempt("transformers_grouped", lambda: model.set_experts_implementation("grouped_mm") or True):
        timed("transformers_grouped_mm")
    if not run.attempt("install_grouped", lambda: install_grouped_experts(model)):
        return
    if reference is not None:
        run.check("grouped_vs_loop", lambda: against(reference))
    timed("grouped_eager")
    graphed("grouped_graphs")
    run.check("padded_canvas_graph", lambda: padded_canvas_check(steps, max(canvases)))
    run.check("denoiser_eager_vs_graphs", lambda: denoiser_check(model, min(args.prompt, 512), device))
    if run.attempt("install_triton", lambda: install_grouped_experts(model, triton=True)):  # the engine's default
        if reference is not None:
            run.check("triton_vs_loop", lambda: against(reference))
        timed("triton_eager")
        graphed("triton_graphs")
    if args.compile and run.attempt("compiled", lambda: (install_fused_norms(model), install_compiled_layers(model))):
        if reference is not None:
            run.check("compiled_vs_loop", lambda: against(reference))
        timed("compiled_eager")
        graphed("compiled_graphs")
    in_place = run.attempt(
        "install_canvas_attention", lambda: install_compiled_layers(model, args.compile, in_place_attention=True)
    )
    if in_place:
        if reference is not None:
            run.check("canvas_attention_vs_loop", lambda: against(reference))
        timed("canvas_attention_eager")
        graphed("canvas_attention_graphs")
    first = canvases[0]

    def fp8_experts() -> dict[str, Any]:
        return asdict(fp8_agreement(model, lambda: steps.eager(first), dense=False, triton=True))

    if run.check("fp8_experts_vs_bf16", fp8_experts):
        if reference is not None:
            run.check("fp8_experts_vs_loop", lambda: against(reference))
        timed("fp8_experts_eager")
        graphed("fp8_experts_graphs")
    if run.check("install_fp8_dense", lambda: install_fp8_linears(model)):
        if reference is not None:
            run.check("fp8_all_vs_loop", lambda: against(reference))
        timed("fp8_all_eager")
        graphed("fp8_all_graphs")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--layers", type=int, default=6, help="layers of the 26B configuration (30 is the full model)")
    parser.add_argument("--prompt", type=int, default=2048)
    parser.add_argument("--canvas", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--tiny", action="store_true", help="small hidden and expert sizes (a CPU smoke run)")
    parser.add_argument("--compile", action="store_true", help="also fused norms and compiled layers, then fp8 on them")
    parser.add_argument("--out", default="bench/results/gpu_fastpath_check.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s: %(message)s")  # kernels, captures
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    if device.type == "cpu":
        torch.set_num_threads(1)
    import transformers

    env = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({platform.machine()})",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "commit": commit(),
        "layers": args.layers,
        "config": "tiny" if args.tiny else "26B-A4B",
        "prompt": args.prompt,
        "batch": args.batch,
        "dtype": str(dtype).removeprefix("torch."),
        "graphs_captured": device.type == "cuda",  # on the CPU the graph paths run the same static shapes eagerly
    }
    run = Run()
    started = time.perf_counter()
    model = run.attempt("build", lambda: build_model(args.layers, args.tiny, device, dtype))
    if model is not None:
        check_all(run, model, args, device)
    if device.type == "cuda":
        env["max_memory_allocated_GB"] = round(torch.cuda.max_memory_allocated(device) / 1e9, 1)
    env["wall_s"] = round(time.perf_counter() - started, 1)
    report = {
        "env": env,
        "step_ms": run.step_ms,
        "capture_s": run.capture_s,
        "checks": run.checks,
        "errors": run.errors,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1, default=str) + "\n", encoding="utf-8")
    print_table(report, args.canvas)
    print(f"JSON: {args.out}")


def print_table(report: dict[str, Any], canvases: list[int]) -> None:
    env = report["env"]
    print(f"\n{env['device']}, torch {env['torch']}, transformers {env['transformers']}, commit {env['commit']}")
    shape = f"{env['layers']} layers of {env['config']} ({env['dtype']}), prompt {env['prompt']}, batch {env['batch']}"
    print(f"decoder step, {shape}")
    print(f"{'path':28}" + "".join(f"{f'C={n} ms':>12}" for n in canvases))
    for name, by_canvas in report["step_ms"].items():
        print(f"{name:28}" + "".join(f"{by_canvas.get(n, float('nan')):12.2f}" for n in canvases))
    for name, seconds in report["capture_s"].items():
        print(f"graph capture, {name}: {seconds} s")
    experts = report["checks"].get("experts_layer")
    if experts:
        print(f"\nexperts of one layer, {experts['tokens']} tokens, {experts['experts_hit']} experts hit, vs the loop:")
        for name, value in experts.items():
            if isinstance(value, dict) and "rel_l2" in value:
                print(f"  {name:26} rel L2 error {value['rel_l2']:.2e}  {value['ms']:8.3f} ms")
            elif isinstance(value, dict) and "error" in value:
                print(f"  {name:26} ERROR {value['error']}")
    linear = report["checks"].get("fp8_linear", {})
    for name in ("q_proj", "mlp_gate_proj"):
        if name in linear:
            value = linear[name]
            times = f"{value['ms_fp8']:.3f} ms vs {value['ms_model_dtype']:.3f} ms in the model's dtype"
            print(f"fp8 {name}: rel L2 error {value['rel_l2']:.2e}, {times}")
    print("\nlogits agreement (max |diff|, top-1 agreement):")
    for name, value in report["checks"].items():
        if isinstance(value, dict) and "top1_agreement" in value:
            print(f"  {name:42} {_agreement(value)}")
        elif name.endswith(("_vs_loop", "_vs_eager")):
            for key, entry in value.items():
                print(f"  {name + ' ' + key:42} {_agreement(entry)}")
    if "denoiser_eager_vs_graphs" in report["checks"]:
        print(f"denoiser, 8 steps of a 64 canvas: {report['checks']['denoiser_eager_vs_graphs']}")
    for name, error in report["errors"].items():
        print(f"ERROR {name}: {error}")
    print(f"wall {env['wall_s']} s")


def _agreement(value: dict[str, Any]) -> str:
    return f"{value['max_abs_diff']:.3g}, {value['top1_agreement']:.3f}"


if __name__ == "__main__":
    main()
