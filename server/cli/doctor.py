"""`diffusion-copilot doctor`: what this machine has for running the engine, and what to do about each gap."""

from __future__ import annotations

import argparse
import importlib.metadata
import platform
import re
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class Check:
    """One line of the report: what was looked at, what was found, and the fix when it is a problem."""

    name: str
    found: str
    fix: str | None = None
    is_warning: bool = False  # worth fixing, but the engine may still run


def add_doctor_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("doctor", help="check Python, torch, CUDA, transformers and the model")
    parser.add_argument("--model", help="also check this checkpoint directory or Hugging Face id")
    parser.set_defaults(run=run_doctor)


def version_of(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def python_check() -> Check:
    found = f"{platform.python_version()} ({sys.executable})"
    fix = None if sys.version_info >= (3, 11) else "use Python 3.11 or newer"
    return Check("python", found, fix)


def torch_checks() -> list[Check]:
    if version_of("torch") is None:
        return [Check("torch", "not installed", "pip install torch (README, Installing)")]
    from diffusion_copilot.engine.platform_report import torch_report

    report = torch_report()
    checks = [Check("torch", report.version)]
    if report.gpus:
        checks.append(Check("cuda", f"{report.cuda_build}; GPUs: {', '.join(report.gpus)}"))
    elif report.cuda_build is None:
        checks.append(
            Check(
                "cuda",
                "CPU-only build of torch",
                "for a GPU install the CUDA build of torch (README, Installing); the CPU runs the embedded model only",
            )
        )
    else:
        checks.append(
            Check(
                "cuda",
                f"CUDA {report.cuda_build} build, but no GPU is visible",
                "check the NVIDIA driver (nvidia-smi) and CUDA_VISIBLE_DEVICES",
            )
        )
    return checks


def kernels_check() -> Check | None:
    """Which kernels the engine would run here (probed on the first GPU); None without torch."""
    if version_of("torch") is None:
        return None
    from diffusion_copilot.engine.kernels.report import device_plan

    return Check("kernels", device_plan())


def transformers_check() -> Check:
    version = version_of("transformers")
    if version is None:
        return Check("transformers", "not installed", "pip install 'transformers>=5.19'")
    from diffusion_copilot.engine.platform_report import has_diffusion_gemma

    if not has_diffusion_gemma():
        return Check("transformers", f"{version}, without DiffusionGemma", "pip install -U 'transformers>=5.19'")
    return tested_range_check(version)


def tested_range_check(version: str) -> Check:
    """A warning when `version` of transformers lies outside the range CI tests (README, Installing)."""
    from diffusion_copilot.engine.hf_internals import TESTED_TRANSFORMERS

    lowest, pinned = TESTED_TRANSFORMERS
    if release(lowest) <= release(version) <= release(pinned):
        return Check("transformers", f"{version}, with DiffusionGemma")
    return Check(
        "transformers",
        f"{version}, with DiffusionGemma, outside the tested range {lowest} to {pinned}",
        f"pip install 'transformers=={pinned}' (the tested version; README, Installing)",
        is_warning=True,
    )


def release(version: str) -> tuple[int, ...]:
    """The numeric release of a version string: '5.26.0.dev0' -> (5, 26, 0)."""
    return tuple(int(part) for part in re.findall(r"\d+", version)[:3])


def model_check(source: str | None) -> Check:
    from diffusion_copilot.engine import CheckpointError
    from diffusion_copilot.engine.weights.checkpoint import (
        RANDOM_WEIGHTS_MARKER,
        checkpoint_dir,
        planned_weights,
        read_config,
    )
    from diffusion_copilot.engine.weights.default_model import shipped_model_dir

    if source is None:
        shipped = shipped_model_dir()
        if shipped is None:
            return Check(
                "model",
                "no trained default model in this install; a random-weight one is built on first use",
                "pass --model with a DiffusionGemma checkpoint for real completions",
            )
        source = str(shipped)
    try:
        directory = checkpoint_dir(source)
        config = read_config(directory)
    except CheckpointError as err:
        return Check("model", f"{source}: not usable", str(err))
    note = ", random weights" if (directory / RANDOM_WEIGHTS_MARKER).exists() else ""
    try:
        weights = f"; weights: {planned_weights(directory).reason}"
    except CheckpointError as err:
        return Check("model", f"{source}: does not fit here", str(err))
    return Check("model", f"{source} ({config.get('architectures', ['?'])[0]}{note}){weights}")


def run_doctor(args: argparse.Namespace) -> int:
    kernels = kernels_check()
    checks = [python_check(), *torch_checks(), *([kernels] if kernels else []), transformers_check(),
              model_check(args.model)]
    for check in checks:
        mark = "ok " if check.fix is None else "?? " if check.is_warning else "!! "
        print(f"{mark}{check.name:13} {check.found}")
        if check.fix is not None:
            print(f"   {'':13} -> {check.fix}")
    problems = [c for c in checks if c.fix and not c.is_warning and c.name in ("python", "torch", "transformers")]
    return 1 if problems else 0
