"""What torch sees of this machine (build, CUDA, GPUs), as plain data for front ends that must not import torch."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TorchReport:
    """The torch build and the GPUs it can use."""

    version: str
    cuda_build: str | None  # the CUDA version torch was built with; None for a CPU-only build
    gpus: tuple[str, ...]


def torch_report() -> TorchReport:
    import torch

    gpus = (
        tuple(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        if torch.cuda.is_available()
        else ()
    )
    return TorchReport(version=torch.__version__, cuda_build=torch.version.cuda, gpus=gpus)


def has_diffusion_gemma() -> bool:
    """Whether the installed transformers has DiffusionGemma."""
    import transformers

    return hasattr(transformers, "DiffusionGemmaForBlockDiffusion")
