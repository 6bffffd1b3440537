"""`diffusion-copilot complete FILE:LINE:COL`: one completion printed for a file on disk (1-based line and column,
as in compiler messages), run on an in-process engine. With `--stdin` (or FILE `-`) the text comes from standard
input and FILE only names it.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from ..completion.gate import GateError, gate_of
from ..completion.inline import context_budget, postprocess_options
from ..completion.request import CompletionRequest, completion_items, cursor_offset, cursor_request
from ..context.languages import language_for_path

MAX_FILE_BYTES = 4 * 1024 * 1024


class InputError(Exception):
    """Bad input from the user; the message is the whole explanation."""


def add_complete_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("complete", help="print a completion for FILE at LINE:COL (1-based)")
    parser.add_argument("location", metavar="FILE:LINE:COL", help="file and 1-based cursor, e.g. app.py:12:5")
    parser.add_argument(
        "--stdin",
        action="store_true",
        help="read the text from standard input; FILE only names it (its language, the path the model is shown)",
    )
    parser.add_argument("--model", help="checkpoint directory or Hugging Face id (default: the embedded model)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    parser.add_argument("--dtype", default="auto", help="auto, bfloat16, float16 or float32 (default auto)")
    parser.add_argument("--steps", type=int, default=16, help="maximum denoising steps (default 16)")
    parser.add_argument("--canvas", type=int, default=32, help="canvas length in tokens (default 32)")
    parser.add_argument(
        "-n",
        "--alternatives",
        type=int,
        default=1,
        help="alternatives to compute (default 1); empty and equal ones are left out",
    )
    parser.add_argument("--seed", type=int, help="fix the sampler's randomness")
    parser.add_argument(
        "--json",
        action="store_true",
        help="print each item's text, confidence and range (1-based line and column, like FILE:LINE:COL), the "
        "timings and steps as JSON",
    )
    parser.set_defaults(run=run_complete)


def parse_location(location: str) -> tuple[Path, int, int]:
    """FILE:LINE:COL with 1-based numbers."""
    parts = location.rsplit(":", 2)
    if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
        raise InputError(f"expected FILE:LINE:COL with 1-based numbers, got {location!r}")
    line, column = int(parts[1]), int(parts[2])
    if line < 1 or column < 1:
        raise InputError(f"LINE and COL are 1-based, got {line}:{column}")
    return Path(parts[0]), line, column


def read_source(path: Path) -> str:
    """The text of a source file, refusing what cannot be completed."""
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if not path.is_file():
        raise InputError(f"{path}: not a regular file")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise InputError(f"{path}: cannot read ({err.strerror})") from err
    return source_text(data, str(path))


def read_stdin(name: str) -> str:
    """The text on standard input, refusing what cannot be completed."""
    if sys.stdin is None or sys.stdin.isatty():
        raise InputError("--stdin reads the text from standard input: pipe or redirect it")
    return source_text(sys.stdin.buffer.read(MAX_FILE_BYTES + 1), name)


def source_text(data: bytes, name: str) -> str:
    """Source bytes as text, refusing what cannot be completed."""
    if not data:
        raise InputError(f"{name}: the file is empty; there is nothing to complete from")
    if len(data) > MAX_FILE_BYTES:
        raise InputError(f"{name}: {len(data)} bytes is larger than the {MAX_FILE_BYTES} byte limit")
    if b"\0" in data:
        raise InputError(f"{name}: looks like a binary file (it contains NUL bytes)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise InputError(f"{name}: not UTF-8 text (invalid byte at offset {err.start})") from err


def run_complete(args: argparse.Namespace) -> int:
    try:
        path, line, column = parse_location(args.location)
        if args.stdin or str(path) == "-":
            text = read_stdin(str(path)).replace("\r\n", "\n")
        else:
            text = read_source(path).replace("\r\n", "\n")
        request = CompletionRequest(
            path=str(path),
            language=language_for_path(str(path)),
            text=text,
            line=line - 1,
            character=column - 1,
            alternatives=args.alternatives,
            canvas_length=args.canvas,
            max_steps=args.steps,
            seed=args.seed,
        )
        try:
            cursor_offset(text, request.line, request.character)
        except ValueError as err:
            raise InputError(f"{path}: {err}") from err
        if not 1 <= args.alternatives <= 16 or not 1 <= args.steps <= 512 or not 1 <= args.canvas <= 1024:
            raise InputError("--alternatives must be 1..16, --steps 1..512 and --canvas 1..1024")
    except InputError as err:
        print(f"diffusion-copilot: {err}", file=sys.stderr)
        return 2

    from diffusion_copilot.engine import CheckpointError, Engine, Job

    try:
        engine = Engine.load(args.model, device=args.device, dtype=args.dtype)
    except CheckpointError as err:
        print(f"diffusion-copilot: {err}", file=sys.stderr)
        return 2
    if engine.has_random_weights:
        print(
            "diffusion-copilot: note: the model's weights are random, so the completion is meaningless text "
            "(use --model with a trained checkpoint)",
            file=sys.stderr,
        )
    cursor = cursor_request(request, context_budget(engine.max_prompt_tokens, engine.chars_per_token))
    assert cursor.context is not None
    job = Job(
        prompt_ids=(),
        canvas_length=min(request.canvas_length, cursor.context.canvas_length),
        max_steps=min(request.max_steps or cursor.context.max_steps, cursor.context.max_steps),
        alternatives=request.alternatives,
        seed=request.seed,
    )
    result = engine.complete(cursor.context.prompt, job, pin_healed=engine.has_random_weights)
    if result.error is not None:
        print(f"diffusion-copilot: {result.error}", file=sys.stderr)
        return 1
    gate = None
    if engine.gate is not None:
        try:
            gate = gate_of(engine.gate)
        except GateError as err:
            print(f"diffusion-copilot: note: {err}; completions are not scored", file=sys.stderr)
    items = completion_items(request, cursor, result, engine.decode, postprocess_options(engine.has_random_weights),
                             gate)
    if len(items) < request.alternatives > 1:
        print(
            f"diffusion-copilot: {len(items)} distinct of {request.alternatives} alternatives "
            "(empty and equal ones are left out)",
            file=sys.stderr,
        )
    if args.json:
        print(
            json.dumps(
                {
                    "file": str(path),
                    "model": engine.loaded.source,
                    "model_has_random_weights": engine.has_random_weights,
                    "items": [
                        {
                            "text": item.text,
                            "confidence": item.confidence,
                            "acceptance": item.acceptance,
                            "range": {
                                "start": {"line": line, "column": column},
                                "end": {"line": line, "column": column},
                            },
                        }
                        for item in items
                    ],
                    "steps": result.steps,
                    "finish_reason": result.finish_reason.value,
                    "timings": asdict(result.timings),
                },
                indent=2,
            )
        )
    else:
        for index, item in enumerate(items):
            if index:
                print("-" * 40)
            print(item.text)
    return 0
