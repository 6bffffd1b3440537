"""Which model a vLLM deployment serves (from `/v1/models`), and the local files this process needs for it:
the tokenizer that turns prompts into the ids the server is sent, and `config.json`, which says whether the
model is DiffusionGemma at all. vLLM does not report a model's architecture, so it is read from the files.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..backend import BackendError

log = logging.getLogger(__name__)
DIFFUSION_ARCHITECTURE = "DiffusionGemmaForBlockDiffusion"  # vLLM 0.33's registry name for the model


@dataclass(frozen=True)
class ServedModel:
    """One entry of a vLLM server's `/v1/models`."""

    name: str  # the `model` requests must name (`--served-model-name`, else the path or Hugging Face id)
    root: str | None  # what the server loaded: a path on the server's machine or a Hugging Face id
    max_model_len: int | None


@dataclass(frozen=True)
class ModelFiles:
    """What this process loaded for the served model."""

    tokenizer: Any
    eos_ids: frozenset[int]
    vocab_size: int  # ids the tokenizer can produce (noise for seed canvases is drawn from these)
    canvas_length: int | None  # the canvas the checkpoint was trained with, when its config says
    architecture: str | None  # None when no config.json was found


def find_served_model(models: Any, wanted: str | None, url: str) -> ServedModel:
    """The served model named `wanted` (by name or root), else the only one served; BackendError otherwise."""
    entries = models.get("data") if isinstance(models, dict) else None
    if not isinstance(entries, list) or not entries:
        raise BackendError(f"{url}/v1/models lists no model: is this a vLLM server?")
    served = [
        ServedModel(str(e.get("id")), e.get("root"), e.get("max_model_len")) for e in entries if isinstance(e, dict)
    ]
    if wanted is not None:
        for model in served:
            if wanted in (model.name, model.root) or _same_path(wanted, model.root):
                return model
    if len(served) == 1:
        return served[0]
    names = ", ".join(m.name for m in served)
    raise BackendError(f"{url} serves several models ({names}): name one with --model")


def load_model_files(served: ServedModel, source: str | None, require_diffusion: bool) -> ModelFiles:
    """The tokenizer and config of `served`, from `source` (a directory or Hugging Face id in the local cache)
    or else from what the server says it loaded; BackendError when there is none, or when the model is not
    DiffusionGemma and `require_diffusion`."""
    candidates = [c for c in (source, served.root, served.name) if c]
    config, origin = _find_config(candidates)
    architecture = _architecture(config) if config is not None else None
    if config is None:
        log.warning("no config.json for %s found locally: cannot check that it is DiffusionGemma", served.name)
    elif require_diffusion and architecture != DIFFUSION_ARCHITECTURE:
        raise BackendError(
            f"the vLLM server serves {served.name} ({architecture or 'unknown architecture'}, from {origin}), "
            f"not a DiffusionGemma model ({DIFFUSION_ARCHITECTURE}): start it with a DiffusionGemma checkpoint, "
            "vLLM >= 0.33 (docs/deployment.md)"
        )
    tokenizer = _load_tokenizer(([origin] if origin else []) + candidates, served.name)
    eos = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    eos |= _generation_eos(origin)
    text_config = (config or {}).get("text_config") or {}
    canvas = (config or {}).get("canvas_length") or text_config.get("canvas_length")
    return ModelFiles(
        tokenizer=tokenizer,
        eos_ids=frozenset(eos),
        vocab_size=len(tokenizer),
        canvas_length=int(canvas) if canvas else None,
        architecture=architecture,
    )


def _same_path(a: str, b: str | None) -> bool:
    if b is None:
        return False
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return False


def _find_config(candidates: list[str]) -> tuple[dict[str, Any] | None, str | None]:
    """The first config.json found among `candidates` (directories, or ids in the local Hugging Face cache)."""
    for candidate in candidates:
        path = _local_file(candidate, "config.json")
        if path is None:
            continue
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise BackendError(f"cannot read {path}: {err}") from err
        if isinstance(data, dict):
            return data, candidate
    return None, None


def _local_file(candidate: str, name: str) -> Path | None:
    """`name` in the directory `candidate`, or in the local Hugging Face cache of the repository `candidate`."""
    directory = Path(candidate).expanduser()
    if directory.is_dir():
        path = directory / name
        return path if path.is_file() else None
    if candidate.count("/") != 1:
        return None
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(candidate, name)
    except Exception:  # not a valid repository id
        return None
    return Path(cached) if isinstance(cached, str) else None


def _architecture(config: dict[str, Any]) -> str | None:
    architectures = config.get("architectures") or []
    return str(architectures[0]) if architectures else config.get("model_type")


def _generation_eos(origin: str | None) -> set[int]:
    """The end-of-sequence ids of generation_config.json (DiffusionGemma ends canvases on several)."""
    path = _local_file(origin, "generation_config.json") if origin else None
    if path is None:
        return set()
    try:
        value = json.loads(path.read_text()).get("eos_token_id")
    except (OSError, json.JSONDecodeError, AttributeError):
        return set()
    if isinstance(value, int):
        return {value}
    return {int(v) for v in value} if isinstance(value, list) else set()


def _load_tokenizer(candidates: list[str], name: str) -> Any:
    from transformers import AutoTokenizer

    errors = []
    for candidate in dict.fromkeys(candidates):
        try:
            return AutoTokenizer.from_pretrained(candidate, local_files_only=True, trust_remote_code=False)
        except Exception as err:
            errors.append(f"{candidate}: {type(err).__name__}")
    raise BackendError(
        f"cannot load the tokenizer of the served model {name} ({'; '.join(errors)}): pass --model with a local "
        "directory or cached Hugging Face id of the same checkpoint"
    )
