"""Where the embedded default model lives: the trained checkpoint shipped in the package, or, where none ships,
a small random-weight checkpoint built once in the user cache directory.
"""

from __future__ import annotations

import logging
from importlib import resources
from pathlib import Path

from ..user_dirs import cache_dir, private_dir

log = logging.getLogger(__name__)


def shipped_model_dir() -> Path | None:
    """The trained default checkpoint inside the installed package, if it ships one."""
    root = Path(str(resources.files("diffusion_copilot.models"))) / "default"
    return root if (root / "config.json").is_file() else None


def default_model_source() -> Path:
    """The default checkpoint directory, building the random fallback on first use."""
    shipped = shipped_model_dir()
    if shipped is not None:
        return shipped
    fallback = private_dir(cache_dir()) / "random-tiny"
    if not (fallback / "config.json").is_file():
        from .tiny_checkpoint import build_random_checkpoint

        log.warning("no trained default model ships with this install; building a random-weight one in %s", fallback)
        build_random_checkpoint(fallback)
    return fallback
