"""`diffusion-copilot api`: the headless HTTP completion API (docs/api.md), served by uvicorn on the machine's
shared engine process. Refuses to listen beyond loopback without a token.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from ..access import is_loopback

EXIT_USAGE = 2
TOKEN_ENV = "DIFFUSION_COPILOT_API_TOKEN"
log = logging.getLogger(__name__)


def add_api_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("api", help="serve completions over HTTP (OpenAI-compatible and code-aware)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    parser.add_argument("--token", help=f"require 'Authorization: Bearer TOKEN' (or set ${TOKEN_ENV}); "
                                        "needed to listen beyond loopback")
    parser.add_argument("--model", help="checkpoint directory or Hugging Face id (default: the embedded model)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    parser.add_argument("--dtype", default="auto", help="auto, bfloat16, float16 or float32 (default auto)")
    parser.add_argument("--steps", type=int, default=16, help="default maximum denoising steps (default 16)")
    parser.add_argument("--canvas", type=int, default=32, help="default canvas length in tokens (default 32)")
    parser.add_argument("--max-queue", type=int, default=8,
                        help="completion requests admitted at once; more are answered 429 (default 8)")
    parser.add_argument("--time-budget-ms", type=int, default=10_000,
                        help="default and largest wall-clock budget of a request (default 10000)")
    parser.add_argument("--max-body-bytes", type=int, default=4 * 1024 * 1024,
                        help="largest request body (default 4 MiB)")
    parser.add_argument("--header-timeout-s", type=float, default=10.0,
                        help="close a connection whose request headers are not complete within this (default 10)")
    parser.add_argument("--print-openapi", action="store_true", help="print the OpenAPI schema and exit")
    parser.set_defaults(run=run_api)


def run_api(args: argparse.Namespace) -> int:
    if args.print_openapi:
        from ..api.app import openapi_schema

        sys.stdout.write(json.dumps(openapi_schema(), indent=2) + "\n")
        return 0
    token = args.token or os.environ.get(TOKEN_ENV) or None
    problem = check_args(args, token)
    if problem is not None:
        sys.stderr.write(f"diffusion-copilot: {problem}\n")
        return EXIT_USAGE
    import uvicorn

    from ..api.app import ApiConfig, create_app
    from ..api.completion import ApiLimits
    from ..api.http import StoppingServer, protocol_with_header_timeout
    from ..engine_client import EngineClient, EngineSpec
    from ..settings import Settings

    model = os.path.abspath(args.model) if args.model and os.path.isdir(args.model) else args.model
    config = ApiConfig(
        engine=EngineSpec(model=model, device=args.device, dtype=args.dtype),
        settings=Settings(max_steps=args.steps, canvas_length=args.canvas, debounce_ms=0),
        limits=ApiLimits(max_queue=args.max_queue, time_budget_ms=args.time_budget_ms,
                         max_body_bytes=args.max_body_bytes),
        token=token,
    )
    level = logging.getLogger().getEffectiveLevel()
    clients: list[EngineClient] = []

    def stop_starting_engines() -> None:  # an engine that stops while requests drain is not started again
        for client in clients:
            client.stop_starting()

    StoppingServer(uvicorn.Config(
        create_app(config, clients.append), host=args.host, port=args.port,
        log_level=logging.getLevelName(level).lower(), access_log=level <= logging.INFO, timeout_graceful_shutdown=5,
        http=protocol_with_header_timeout(args.header_timeout_s)), stop_starting_engines).run()
    return 0


def check_args(args: argparse.Namespace, token: str | None) -> str | None:
    """Why the arguments cannot be served, or None."""
    if token is None and not is_loopback(args.host):
        return (f"refusing to listen on {args.host} without a token: anyone who can reach it could use the "
                f"engine. Pass --token (or set ${TOKEN_ENV}), or listen on 127.0.0.1")
    if not 0 <= args.port <= 65535:
        return f"--port must be 0..65535, got {args.port}"
    if not 1 <= args.max_queue <= 1024:
        return f"--max-queue must be 1..1024, got {args.max_queue}"
    if not 50 <= args.time_budget_ms <= 600_000:
        return f"--time-budget-ms must be 50..600000, got {args.time_budget_ms}"
    if not 1024 <= args.max_body_bytes <= 256 * 1024 * 1024:
        return f"--max-body-bytes must be 1024..268435456, got {args.max_body_bytes}"
    if not 1 <= args.steps <= 512 or not 4 <= args.canvas <= 256:
        return "--steps must be 1..512 and --canvas 4..256"
    return None
