"""GPU check of the quantized weight formats on the full 26B-A4B configuration with random weights: resident GB of
each format, one MoE layer's time on its kernel against its weight-streaming floor, and logits top-1 agreement
with bf16. `--tiny` runs the same path on a tiny model (on the CPU through Triton's interpreter).

    python -m bench.gpu.quant_check --layers 4            # H100: writes bench/results/quant_check-*.json
    python -m bench.gpu.quant_check --tiny --layers 2     # CPU smoke run of the same code
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")  # before any kernel is defined

from bench.lib.random_model import build_random_model, copy_bandwidth, synchronize, write_checkpoint_dir
from bench.lib.report import commit
from diffusion_copilot.engine.hf_internals import with_cache
from diffusion_copilot.engine.kernels.agreement import logits_agreement
from diffusion_copilot.engine.kernels.grouped_moe import layer_pairs
from diffusion_copilot.engine.kernels.quant_moe import QuantExperts
from diffusion_copilot.engine.weights.formats import weight_format


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=4, help="text layers of the model (the full model has 30)")
    parser.add_argument("--tiny", action="store_true", help="a tiny model (CPU smoke run)")
    parser.add_argument("--formats", default="fp8,int8,int4,nvfp4")
    parser.add_argument("--canvas", type=int, default=64, help="tokens through the MoE layer (a C64 step)")
    parser.add_argument("--prompt", type=int, default=256)
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32  # the interpreter has no bf16
    directory = write_checkpoint_dir(Path(tempfile.mkdtemp()) / "model", args.tiny)
    _set_layers(directory, args.layers, args.tiny)
    started = time.perf_counter()
    model = build_random_model(directory, device, dtype)
    print(f"built {args.layers}-layer model in {time.perf_counter() - started:.1f} s on {device}")
    bandwidth = copy_bandwidth(device, 1 << 30 if device.type == "cuda" else 1 << 24)
    prompt = min(args.prompt, 16) if device.type == "cpu" else args.prompt
    reference = _logits(model, prompt, args.canvas)
    stock = [(dec.experts, enc.experts) for enc, dec in layer_pairs(model)]
    rows: list[dict[str, Any]] = [_row("bf16", model, stock[0][0], reference, reference, args.canvas, bandwidth)]
    for name in args.formats.split(","):
        fmt = weight_format(name)
        for (experts, _), (enc, dec) in zip(stock, layer_pairs(model), strict=True):
            q = QuantExperts(fmt.quantize(experts.gate_up_proj.detach()), fmt.quantize(experts.down_proj.detach()))
            enc.experts = dec.experts = q
        logits = _logits(model, prompt, args.canvas)
        rows.append(_row(name, model, model.model.decoder.layers[0].experts, reference, logits, args.canvas, bandwidth))
        for (experts, enc_experts), (enc, dec) in zip(stock, layer_pairs(model), strict=True):
            dec.experts, enc.experts = experts, enc_experts
    print(f"{'format':8} {'experts GB':>10} {'MoE ms':>8} {'floor ms':>9} {'x floor':>8} {'top-1':>7} {'max |d|':>9}")
    for r in rows:
        print(
            f"{r['format']:8} {r['experts_gb']:10.2f} {r['moe_ms']:8.3f} {r['floor_ms']:9.3f} "
            f"{r['moe_ms'] / r['floor_ms']:8.2f} {r['top1_agreement']:7.4f} {r['max_abs_diff']:9.4f}"
        )
    record = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu (Triton interpreter)",
        "commit": commit(),
        "layers": args.layers,
        "tiny": args.tiny,
        "canvas": args.canvas,
        "copy_bandwidth_gbs": bandwidth / 1e9,
        "rows": rows,
        "note": "experts GB is for all layers; MoE ms is one layer's experts (warm, kernels compiled beforehand)",
    }
    out = Path(__file__).parents[1] / "results" / f"quant_check-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(record, indent=2), encoding="utf-8")
    print(f"wrote {out}")


def _set_layers(directory: Path, layers: int, tiny: bool) -> None:
    path = directory / "config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    text = config["text_config"]
    if tiny:  # int4's groups of 128 need inputs of 128 and more
        text.update(hidden_size=128, moe_intermediate_size=128, intermediate_size=256, head_dim=32)
    text["num_hidden_layers"] = layers
    if text.get("layer_types"):
        text["layer_types"] = text["layer_types"][:layers]  # the full model's first layers (sliding below 6)
    if isinstance(text.get("per_layer_config"), dict):  # overrides of layers beyond the kept ones go
        text["per_layer_config"] = {k: v for k, v in text["per_layer_config"].items() if int(k) < layers}
    path.write_text(json.dumps(config, indent=2), encoding="utf-8")


def _logits(model: Any, prompt: int, canvas: int) -> torch.Tensor:
    from transformers import DynamicCache

    device, vocab = model.device, model.config.get_text_config().vocab_size
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(5, vocab, (1, prompt + canvas), generator=generator).to(device)
    with torch.inference_mode():
        cache = DynamicCache(config=model.config.get_text_config(decoder=True))
        positions = torch.arange(prompt + canvas, device=device)[None]
        model.model.encoder(input_ids=ids[:, :prompt], position_ids=positions[:, :prompt], **with_cache(cache))
        out = model(decoder_input_ids=ids[:, prompt:], decoder_position_ids=positions[:, prompt:], **with_cache(cache))
        return out.logits.float()


def _row(
    name: str, model: Any, experts: Any, reference: torch.Tensor, logits: torch.Tensor, canvas: int, bandwidth: float
) -> dict[str, Any]:
    layers = len(model.model.decoder.layers)
    layer_bytes = sum(t.numel() * t.element_size() for t in [*experts.parameters(), *experts.buffers()])
    moe_ms = _time_moe(model, experts, canvas)
    agreement = logits_agreement(reference, logits)
    return {
        "format": name,
        "experts_gb": layer_bytes * layers / 1e9,
        "moe_ms": moe_ms,
        "floor_ms": layer_bytes / bandwidth * 1e3,
        "top1_agreement": agreement.top1_agreement,
        "max_abs_diff": agreement.max_abs_diff,
    }


def _time_moe(model: Any, experts: Any, tokens: int, runs: int = 20) -> float:
    """Median ms of one layer's experts on `tokens` tokens, top-k of a random router, after two warm-up calls."""
    config = model.config.get_text_config()
    hidden, device = config.hidden_size, model.device
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(tokens, hidden, generator=generator).to(device, model.dtype)
    weights, index = torch.randn(tokens, config.num_experts, generator=generator).softmax(-1).topk(config.top_k_experts)
    index, weights = index.to(device), weights.to(device)
    times = []
    with torch.inference_mode():
        for run in range(runs + 2 if device.type == "cuda" else 3):
            synchronize(device)
            started = time.perf_counter()
            experts(x, index, weights)
            synchronize(device)
            if run >= 2:
                times.append((time.perf_counter() - started) * 1e3)
    return sorted(times)[len(times) // 2]


if __name__ == "__main__":
    main()
