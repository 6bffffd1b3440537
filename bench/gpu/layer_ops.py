"""How many operations one decoder layer launches per denoising step, eager and with compiled layers, on a tiny
model of the 26B-A4B class (bf16, grouped experts and fused norms as on a GPU) run on the CPU.

    python -m bench.gpu.layer_ops [--out bench/results/layer_ops.json]

Eager: the non-view aten ops of one decoder forward (a dispatch mode counts them), per layer; on a GPU each is a
kernel, except dtype casts to the same dtype. Compiled (EngineOptions.compile_layers): the kernels Inductor
generates for the decoder's regions, and the library calls left between them (matmuls, grouped matmuls, sort,
top-k, searchsorted), read from Inductor's generated code, per layer. Inductor's C++ backend fuses somewhat
differently from its Triton backend, so the compiled count is an estimate of the GPU's.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from bench.gpu.engine import ensure_package
from bench.lib.random_model import build_random_model, write_checkpoint_dir
from bench.lib.report import commit

VIEWS = {
    "returns its input",
    "view", "_unsafe_view", "reshape", "expand", "transpose", "t", "permute", "slice", "select", "unsqueeze",
    "squeeze", "alias", "as_strided", "detach", "split", "chunk", "unbind", "split_with_sizes", "_reshape_alias",
}  # fmt: skip
FUSED_CALL = re.compile(r"\b(cpp_fused_\w+\(|triton_\w+\.run\()")
LIBRARY_CALL = re.compile(r"(extern_kernels\.\w+|torch\.ops\.aten\.\w+)(?:\.\w+)?\(")


class CountOps(TorchDispatchMode):
    """Counts the aten ops that run inside the block, by name."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: collections.Counter[str] = collections.Counter()

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        result = func(*args, **(kwargs or {}))
        same = args and result is args[0]  # a cast to the dtype a tensor already has returns it: no kernel
        self.counts[func.overloadpacket.__name__ if not same else "returns its input"] += 1
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--canvas", type=int, default=64)
    parser.add_argument("--out", default="bench/results/layer_ops.json")
    args = parser.parse_args()
    ensure_package()
    import torch._inductor.config as inductor_config
    from transformers import DynamicCache

    from diffusion_copilot.engine.kernels.compiled_layers import install_compiled_layers
    from diffusion_copilot.engine.kernels.cuda_graphs import StepGraphs
    from diffusion_copilot.engine.kernels.fused_norm import install_fused_norms
    from diffusion_copilot.engine.kernels.grouped_moe import Kernels, install_grouped_experts

    scratch = Path(tempfile.mkdtemp())
    inductor_config.fx_graph_cache = False  # compile now, so that the generated code is written
    model = build_random_model(write_checkpoint_dir(scratch / "model", tiny=True), torch.device("cpu"), torch.bfloat16)
    kernels = Kernels(grouped_mm=True, scaled_grouped_mm=False, scaled_mm=False)
    install_grouped_experts(model, fp8=False, kernels=kernels)
    install_fused_norms(model)
    text = model.config.get_text_config(decoder=True)
    layers, length, canvas = text.num_hidden_layers, 200, args.canvas
    with torch.inference_mode():
        prompt = torch.randint(10, text.vocab_size, (1, length))
        cache = model.model.encoder(
            input_ids=prompt, cache=DynamicCache(config=text), position_ids=torch.arange(length)[None]
        ).cache
        ids = torch.randint(10, text.vocab_size, (1, canvas))
        sc = torch.randn(1, canvas, text.vocab_size, dtype=torch.bfloat16)
        positions = torch.arange(length, length + canvas)[None]
        step = StepGraphs(model, capture=False).step_for(cache, positions, 1)
        assert step is not None
        step(ids, sc)
        with CountOps() as eager:
            step(ids, sc)
        # Only the decoder runs from here on: its 4 graphs (2 regions x 2 kinds), written under `scratch`.
        install_compiled_layers(model, cache_dir=scratch / "inductor")
        step(ids, sc)
    sources = [path.read_text() for path in (scratch / "inductor").rglob("*.py")]
    graphs = [source for source in sources if "def call(" in source]
    bodies = [code.split("def call(")[1] for code in graphs]
    calls = collections.Counter(name for body in bodies for name in LIBRARY_CALL.findall(body))
    fused = sum(len(FUSED_CALL.findall(body)) for body in bodies)
    shutil.rmtree(scratch)
    kinds = len(set(text.layer_types))
    non_view = {name: n for name, n in eager.counts.items() if name not in VIEWS}
    report = {
        "benchmark": "layer_ops",
        "model": f"tiny 26B-A4B class, {layers} layers ({kinds} kinds), bf16, grouped experts, fused norms",
        "canvas": canvas,
        "eager_ops_per_layer": round(sum(non_view.values()) / layers, 1),
        "eager_ops_by_name_per_forward": dict(sorted(non_view.items(), key=lambda item: -item[1])),
        "compiled_fused_kernels_per_layer": fused / kinds,
        "compiled_library_calls_per_layer": sum(calls.values()) / kinds,
        "compiled_library_calls_by_name": dict(calls),
        "compiled_graphs": len(graphs),
        "torch": torch.__version__,
        "commit": commit(),
    }
    compiled = report["compiled_fused_kernels_per_layer"] + report["compiled_library_calls_per_layer"]
    print(f"eager: {report['eager_ops_per_layer']} ops per decoder layer")
    print(
        f"compiled: {report['compiled_fused_kernels_per_layer']:.1f} fused kernels + "
        f"{report['compiled_library_calls_per_layer']:.1f} library calls = {compiled:.1f} per layer around "
        f"attention, from {report['compiled_graphs']} graphs; library calls {dict(calls)}"
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
