"""Loading a DiffusionGemma checkpoint and its tokenizer, from a directory or a Hugging Face id in the local
cache, with one-line actionable errors for everything that can go wrong. The same path loads the 26B model and
the small embedded one. Only data is loaded: safetensors weights, never pickles or code from the checkpoint.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..backends.local.sampler import SamplerParams
from ..hf_internals import LOAD_OPTIONS
from .compressed import QUANT_METHOD, CompressedError, checkpoint_format, quantization_method
from .quantized_model import build_compressed, quantize_in_place, resident_bytes
from .weights_plan import WeightsChoice, checkpoint_sizes, choose_weights

log = logging.getLogger(__name__)

MODEL_TYPE = "diffusion_gemma"
RANDOM_WEIGHTS_MARKER = "RANDOM_WEIGHTS"  # a file in a checkpoint directory whose weights were never trained
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")  # weight files never loaded: unpickling runs code
DTYPES = {"auto": None, "bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


class CheckpointError(Exception):
    """A checkpoint could not be loaded; the message says what to do about it."""


@dataclass
class LoadedModel:
    """A model ready to denoise, with its tokenizer and sampler constants."""

    model: Any
    tokenizer: Any
    params: SamplerParams
    source: str
    has_random_weights: bool
    weights: WeightsChoice | None = None  # the experts' format and why
    resident: dict[str, int] = field(default_factory=dict)  # bytes on the device by weight format

    @property
    def device(self) -> torch.device:
        return torch.device(self.model.device)


def resolve_device(device: str) -> torch.device:
    """'auto' picks CUDA when a GPU is visible; anything else must name a usable torch device."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as err:
        raise CheckpointError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N") from err
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise CheckpointError(
            f"device {device!r} asked for but torch {torch.__version__} sees no CUDA GPU: "
            "install the CUDA build of torch (README, Installing) or use --device cpu"
        )
    return resolved


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """'auto' means bfloat16 on a GPU and float32 on the CPU."""
    if dtype not in DTYPES:
        raise CheckpointError(f"unknown dtype {dtype!r}: use one of {', '.join(DTYPES)}")
    chosen = DTYPES[dtype]
    if chosen is None:
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return chosen


def checkpoint_dir(source: str) -> Path:
    """The local directory of a checkpoint given as a path or as a Hugging Face id already in the cache."""
    path = Path(source).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise CheckpointError(f"model path {source} is a file, not a checkpoint directory")
    looks_like_hub_id = source.count("/") == 1 and not source.startswith((".", "/", "~"))
    if not looks_like_hub_id:
        raise CheckpointError(f"no checkpoint directory at {source}: give a directory or a Hugging Face id")
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(source, local_files_only=True))
    except Exception as err:
        raise CheckpointError(
            f"{source} is not in the local Hugging Face cache ({type(err).__name__}): download it where there "
            f"is network with `huggingface-cli download {source}`, or pass its directory with --model"
        ) from err


def read_config(directory: Path) -> dict[str, Any]:
    """config.json, checked to be a DiffusionGemma checkpoint."""
    config_path = directory / "config.json"
    if not config_path.is_file():
        raise CheckpointError(f"{directory} has no config.json: it is not a Hugging Face checkpoint directory")
    try:
        config: dict[str, Any] = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{config_path} is unreadable or corrupt ({err}): re-download the checkpoint") from err
    if config.get("model_type") != MODEL_TYPE:
        raise CheckpointError(
            f"{directory} holds a {config.get('model_type', 'unknown')!r} model, not DiffusionGemma "
            f"(model_type {MODEL_TYPE!r}): point --model at a DiffusionGemmaForBlockDiffusion checkpoint"
        )
    return config


def load_checkpoint(
    source: str, device: str = "auto", dtype: str = "auto", weights: str = "auto", use_kernels: bool | None = None
) -> LoadedModel:
    """Load model, tokenizer and sampler constants; raise CheckpointError with a one-line fix on failure.
    `weights`: the experts' format (weights_plan); `use_kernels`: keep quantized weights quantized on the Triton
    kernels (default: on a GPU; elsewhere they are dequantized at load)."""
    from transformers import AutoTokenizer, DiffusionGemmaForBlockDiffusion
    from transformers.utils import logging as hf_logging

    directory = checkpoint_dir(source)
    config = read_config(directory)
    torch_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, torch_device)
    choice = _weights_choice(directory, config, weights, torch_device)
    kernels = torch_device.type == "cuda" if use_kernels is None else use_kernels
    if _weights_bytes(directory) > 1 << 30:
        hf_logging.enable_progress_bar()  # a bar on stderr while a large checkpoint loads
    else:
        hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    if not any((directory / name).is_file() for name in ("tokenizer.json", "tokenizer.model")):
        raise CheckpointError(
            f"{directory} has no tokenizer (tokenizer.json or tokenizer.model): copy the "
            "checkpoint's tokenizer files next to config.json"
        )
    _require_safetensors(directory)
    try:
        tokenizer = AutoTokenizer.from_pretrained(directory, trust_remote_code=False)
    except Exception as err:
        raise CheckpointError(
            f"cannot load the tokenizer in {directory} ({_short(err)}): the checkpoint "
            "needs tokenizer.json / tokenizer_config.json"
        ) from err
    try:
        if quantization_method(config) is not None:
            model = build_compressed(directory, torch_device, torch_dtype, kernels)
        else:
            quantize = kernels and choice.experts != "bf16"  # quantized layer by layer on the device, from the host
            placement = {"device_map": torch_device} if torch_device.type == "cuda" and not quantize else {}
            model = DiffusionGemmaForBlockDiffusion.from_pretrained(
                directory, dtype=torch_dtype, use_safetensors=True, trust_remote_code=False, **placement, **LOAD_OPTIONS
            )
            if quantize:
                quantize_in_place(model, choice.experts, "bf16", torch_device)
                model.to(torch_device)
    except CompressedError as err:
        raise CheckpointError(f"{source}: {err}") from err
    except torch.OutOfMemoryError as err:
        raise CheckpointError(
            f"out of memory loading {source} on {torch_device} as {torch_dtype}: free GPU memory, use a GPU with "
            "more memory, or a quantized (fp8) checkpoint"
        ) from err
    except Exception as err:  # safetensors, torch and transformers each raise their own kinds
        raise CheckpointError(f"{source} is incomplete or corrupt ({_short(err)}): re-download it") from err
    model.eval()
    if torch_device.type == "cpu" and model.num_parameters() < 100_000_000:
        torch.set_num_threads(1)  # small models on small CPUs run faster on one thread
    params = SamplerParams.from_generation_config(model.generation_config)
    log.info("loaded %s on %s (%s)", source, torch_device, torch_dtype)
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        params=params,
        source=str(source),
        has_random_weights=(directory / RANDOM_WEIGHTS_MARKER).exists(),
        weights=choice,
        resident=resident_bytes(model),
    )


def planned_weights(directory: Path, weights: str = "auto", device: str = "auto") -> WeightsChoice:
    """The experts' format `weights` would load on `device` for this checkpoint, without loading it (`doctor`)."""
    return _weights_choice(directory, read_config(directory), weights, resolve_device(device))


def _weights_choice(directory: Path, config: dict[str, Any], weights: str, device: torch.device) -> WeightsChoice:
    """The experts' format for `weights` on `device`, or CheckpointError naming memory needed and free."""
    method = quantization_method(config)
    if method is not None and method != QUANT_METHOD:
        raise CheckpointError(
            f"{directory} is quantized with {method!r}, which this engine does not load: use a compressed-tensors "
            "checkpoint (fp8, int4, nvfp4) or a bf16 one (`diffusion-copilot quantize` makes the former)"
        )
    try:
        own = checkpoint_format(config)
        free = torch.cuda.mem_get_info(device)[0] if device.type == "cuda" else None
        choice = choose_weights(weights, own, checkpoint_sizes(directory), free)
    except ValueError as err:
        raise CheckpointError(str(err)) from err
    log.info("weights: %s", choice.reason)
    return choice


def _require_safetensors(directory: Path) -> None:
    """Refuse a checkpoint without safetensors weights: pickled weights (.bin, .pt) can run code when loaded."""
    if not any(directory.glob("*.safetensors")):
        pickled = sorted(p.name for p in directory.iterdir() if p.suffix in PICKLE_SUFFIXES)
        found = f"only pickled weights ({', '.join(pickled[:3])})" if pickled else "no weights"
        raise CheckpointError(
            f"{directory} has {found}: only .safetensors weights are loaded (pickled weights can run code); "
            "convert the checkpoint to safetensors or download its safetensors files"
        )


def _weights_bytes(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.glob("*.safetensors"))


def _short(err: BaseException) -> str:
    """The first line of an exception message, for one-line errors."""
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:200]}" if text else type(err).__name__
