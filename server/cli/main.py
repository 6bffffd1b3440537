"""The `diffusion-copilot` command line: argument parsing and dispatch only; each command's work lives in the
module that owns it. Errors a user can fix print one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from .api import add_api_command
from .complete import add_complete_command
from .doctor import add_doctor_command
from .engine import add_engine_command
from .quantize import add_quantize_command
from .serve import add_serve_command, add_stats_command

EXIT_USAGE = 2
CommandAdder = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]
COMMANDS: tuple[CommandAdder, ...] = (
    add_complete_command,
    add_doctor_command,
    add_serve_command,
    add_engine_command,
    add_stats_command,
    add_api_command,
    add_quantize_command,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="diffusion-copilot",
        description="Whole-block code completions from a local DiffusionGemma engine.",
    )
    parser.add_argument("--log-level", default="WARNING", help="stderr log level (default WARNING)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in COMMANDS:
        add(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
