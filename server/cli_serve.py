"""`diffusion-copilot serve` (the language server, stdio by default) and `diffusion-copilot stats` (the local
telemetry summary)."""

from __future__ import annotations

import argparse
import gc
import json
import logging
import sys
from pathlib import Path

EXIT_USAGE = 2


def add_serve_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("serve", help="run the language server (stdio unless --tcp)")
    parser.add_argument("--tcp", metavar="HOST:PORT", help="listen on TCP instead of stdin/stdout")
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
        from .settings import settings_json_schema

        sys.stdout.write(json.dumps(settings_json_schema(), indent=2) + "\n")
        return 0
    address = None
    if args.tcp is not None:
        host, _, port = args.tcp.rpartition(":")
        if not host or not port.isdigit():
            sys.stderr.write(f"diffusion-copilot: --tcp expects HOST:PORT, got {args.tcp!r}\n")
            return EXIT_USAGE
        address = (host, int(port))
    if args.log_file is not None:
        root = logging.getLogger()
        for handler in list(root.handlers):
            root.removeHandler(handler)
        handler = logging.FileHandler(args.log_file)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    from .lsp_features import build_server

    server = build_server()
    gc.freeze()  # what start-up made (modules, classes) lives on: full collections skip it (~25 ms a pause)
    if address is None:
        server.start_io()
    else:
        server.start_tcp(*address)
    return 0


def run_stats(args: argparse.Namespace) -> int:
    from .telemetry import default_path, read_stats, stats_table

    path = args.file or default_path()
    sys.stdout.write(f"{path}\n{stats_table(read_stats(path))}\n")
    return 0
