"""`diffusion-copilot quantize SRC DST`: write a bf16 checkpoint in the compressed-tensors layout the engine loads."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_quantize_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("quantize", help="quantize a bf16 checkpoint (fp8, int4 or NVFP4 experts)")
    parser.add_argument("source", help="bf16 checkpoint directory or Hugging Face id in the local cache")
    parser.add_argument("out", type=Path, help="new directory for the quantized checkpoint")
    parser.add_argument("--weights", required=True, choices=("fp8", "int8", "int4", "nvfp4"), help="expert format")
    parser.add_argument(
        "--dense",
        default="bf16",
        choices=("bf16", "fp8", "int8"),
        help="format of the attention and dense-MLP linears (default bf16)",
    )
    parser.set_defaults(run=run_quantize)


def run_quantize(args: argparse.Namespace) -> int:
    from diffusion_copilot.engine import CheckpointError
    from diffusion_copilot.engine.weights.quantize_checkpoint import quantize_checkpoint

    try:
        out = quantize_checkpoint(args.source, args.out, args.weights, args.dense)
    except CheckpointError as err:
        print(f"diffusion-copilot quantize: {err}", file=sys.stderr)
        return 2
    print(f"wrote {out}", file=sys.stderr)
    return 0
