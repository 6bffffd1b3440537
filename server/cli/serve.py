"""`diffusion-copilot serve` (the language server, stdio by default) and `diffusion-copilot stats` (the local
telemetry summary)."""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import sys
from pathlib import Path

from ..access import is_loopback

EXIT_USAGE = 2


def add_serve_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("serve", help="run the language server (stdio unless --tcp)")
    parser.add_argument("--tcp", metavar="HOST:PORT", help="listen on TCP instead of stdin/stdout (loopback only "
                                                           "without --token-env)")
    parser.add_argument("--token-env", metavar="NAME", help="with --tcp: clients must send the value of environment "
                        "variable NAME as initializationOptions.token; needed to listen beyond loopback")
    parser.add_argument("--log-file", type=Path, help="write logs to this file instead of stderr")
    parser.add_argument("--print-settings-schema", action="store_true",
                        help="print the settings as JSON schema and exit")
    parser.set_defaults(run=run_serve)


def add_stats_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("stats", help="completion counts, acceptance and latency from local telemetry")
    parser.add_argument("--file", type=Path, help="telemetry file (default: the user state directory's)")
    parser.set_defaults(run=run_stats)


def run_serve(args: argparse.Namespace) -> int:
    if args.print_settings_schema:
        from ..settings import settings_json_schema

        sys.stdout.write(json.dumps(settings_json_schema(), indent=2) + "\n")
        return 0
    try:
        address, token = tcp_address(args), tcp_token(args)
    except ValueError as err:
        sys.stderr.write(f"diffusion-copilot: {err}\n")
        return EXIT_USAGE
    if address is not None and token is None and not is_loopback(address[0]):
        sys.stderr.write(f"diffusion-copilot: refusing to listen on {address[0]} without a token: anyone who can "
                         "reach it could run commands as you. Pass --token-env NAME, or listen on 127.0.0.1\n")
        return EXIT_USAGE
    if args.log_file is not None:
        from diffusion_copilot.engine.user_dirs import open_private

        root = logging.getLogger()
        for handler in list(root.handlers):
            root.removeHandler(handler)
        os.close(open_private(args.log_file, os.O_WRONLY | os.O_APPEND))  # created 0600: it may quote code
        handler = logging.FileHandler(args.log_file)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    from ..lsp.handlers import build_server

    server = build_server()
    gc.freeze()  # what start-up made (modules, classes) lives on: full collections skip it (~25 ms a pause)
    try:
        server.serve(address, token)
    except OSError as err:
        if address is None:
            raise
        sys.stderr.write(f"diffusion-copilot: cannot listen on {args.tcp}: {err.strerror or err}\n")
        return 1
    return 0


def tcp_address(args: argparse.Namespace) -> tuple[str, int] | None:
    """(host, port) of --tcp, None for stdio; ValueError when malformed."""
    if args.tcp is None:
        return None
    host, _, port = args.tcp.rpartition(":")
    if not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"--tcp expects HOST:PORT, got {args.tcp!r}")
    return host.strip("[]"), int(port)


def tcp_token(args: argparse.Namespace) -> str | None:
    """The token --token-env names, None without one; ValueError when it is unset or given without --tcp."""
    if args.token_env is None:
        return None
    if args.tcp is None:
        raise ValueError("--token-env applies to --tcp only (over stdio the editor is the only client)")
    token = os.environ.get(args.token_env, "")
    if not token.strip():
        raise ValueError(f"--token-env {args.token_env}: that environment variable is unset or empty")
    return token


def run_stats(args: argparse.Namespace) -> int:
    from ..telemetry import default_path, read_stats, stats_table

    path = args.file or default_path()
    sys.stdout.write(f"{path}\n{stats_table(read_stats(path))}\n")
    return 0
