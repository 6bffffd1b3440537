"""`diffusion-copilot engine`: the machine's engine process in the foreground (front ends start it detached).

Where its socket lives is decided here, by the same function the clients use to find it.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..engine_client import VLLM_TOKEN_ENV, EngineSpec, engine_paths, private_runtime_dir, runtime_dir

IDLE_EXIT_ENV = "DIFFUSION_COPILOT_ENGINE_IDLE_EXIT_S"


def add_engine_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("engine", help="serve the model to every editor and client of this machine")
    parser.add_argument("--model", help="checkpoint directory or Hugging Face id (default: embedded model)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    parser.add_argument("--dtype", default="auto", help="auto, bfloat16, float16 or float32 (default auto)")
    parser.add_argument("--fp8", action="store_true", help="fp8 expert weights (GPUs with fp8 matrix units)")
    parser.add_argument("--eager", action="store_true", help="stock modules: no grouped kernels, no CUDA graphs")
    parser.add_argument("--compile-layers", action="store_true",
                        help="torch.compile the text layers (the first start compiles for a minute, later ones "
                             "read Inductor's cache)")
    parser.add_argument("--runtime-dir", type=Path, help="where the socket and lock file live")
    parser.add_argument("--idle-exit-s", type=float, default=float(os.environ.get(IDLE_EXIT_ENV, 1800)),
                        help=f"exit after this many seconds without clients (default ${IDLE_EXIT_ENV} or 1800)")
    vllm = parser.add_argument_group("scale-out", "hand jobs to a vLLM deployment (docs/deployment.md)")
    vllm.add_argument("--backend", choices=("transformers", "vllm"), default="transformers",
                      help="transformers: run the model here (default); vllm: on the servers of --vllm-url, "
                           "with --model naming the served checkpoint's tokenizer when the server's own path is "
                           "not readable here")
    vllm.add_argument("--vllm-url", action="append", default=[], metavar="URL",
                      help="a vLLM server (http://host:8000); repeat for replicas (least-busy routing)")
    vllm.add_argument("--vllm-token", default=os.environ.get(VLLM_TOKEN_ENV),
                      help=f"the servers' --api-key, sent as a bearer token (default: ${VLLM_TOKEN_ENV})")
    vllm.add_argument("--vllm-any-model", action="store_true",
                      help="do not refuse a server whose model is not DiffusionGemma (tests of the HTTP path)")
    parser.set_defaults(run=run_engine)


def run_engine(args: argparse.Namespace) -> int:
    from diffusion_copilot.engine.backends import BackendConfig, BackendKind
    from diffusion_copilot.engine.service.process import ServiceConfig, serve  # loads torch: only in this process

    backend = BackendConfig(model=args.model, device=args.device, dtype=args.dtype, fp8=args.fp8, eager=args.eager,
                            compile_layers=args.compile_layers)
    if args.backend == "vllm":
        if not args.vllm_url:
            raise SystemExit("diffusion-copilot engine: --backend vllm needs at least one --vllm-url")
        backend = BackendConfig(kind=BackendKind.VLLM, model=args.model, vllm_urls=tuple(args.vllm_url),
                                vllm_token=args.vllm_token, require_diffusion=not args.vllm_any_model)
    spec = EngineSpec(model=args.model, device=args.device, dtype=args.dtype, backend=args.backend,
                      vllm_urls=tuple(args.vllm_url))  # the socket the language servers look for
    socket_path, lock_path, _ = engine_paths(spec, private_runtime_dir(args.runtime_dir or runtime_dir()))
    status: int = serve(ServiceConfig(socket_path=socket_path, lock_path=lock_path, model=args.model,
                                      device=args.device, dtype=args.dtype, idle_exit_s=args.idle_exit_s,
                                      backend=backend))
    return status
