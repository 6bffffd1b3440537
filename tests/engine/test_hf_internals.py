"""The adapters over transformers' internals work on the installed release, and every internal the engine uses is
there. CI runs this module against the lowest supported release and the newest one too."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import transformers
from packaging.version import Version
from transformers.models.diffusion_gemma.modeling_diffusion_gemma import DiffusionGemmaRMSNorm

from diffusion_copilot.engine import load_checkpoint
from diffusion_copilot.engine.hf_internals import (
    TESTED_TRANSFORMERS,
    cache_keyword,
    missing_internals,
    norm_eps,
    output_cache,
    with_cache,
)

ROOT = Path(__file__).resolve().parents[2]


def test_norm_eps_reads_the_installed_norm():
    assert norm_eps(DiffusionGemmaRMSNorm(8, eps=3e-5)) == pytest.approx(3e-5)


@pytest.mark.parametrize(
    "norm", [SimpleNamespace(eps=1e-6), SimpleNamespace(variance_epsilon=1e-6)], ids=["before-5.25", "since-5.25"]
)
def test_norm_eps_reads_either_name(norm):
    assert norm_eps(norm) == 1e-6


def test_the_cache_goes_in_and_comes_back_under_the_installed_names(tiny_checkpoint: Path):
    model = load_checkpoint(str(tiny_checkpoint), device="cpu").model
    cache = transformers.DynamicCache(config=model.config.get_text_config())
    with torch.inference_mode():
        out = model.model.encoder(
            input_ids=torch.tensor([[2, 40, 51]]),
            position_ids=torch.arange(3)[None],
            use_cache=True,
            **with_cache(cache),
        )
    assert output_cache(out) is cache
    assert cache.get_seq_length() == 3
    assert cache_keyword() == ("cache" if Version(transformers.__version__) >= Version("5.25") else "past_key_values")


def test_every_internal_the_engine_uses_is_there(tiny_checkpoint: Path):
    model = load_checkpoint(str(tiny_checkpoint), device="cpu").model
    assert missing_internals(model) == []


def test_missing_internals_names_what_is_gone(tiny_checkpoint: Path):
    model = load_checkpoint(str(tiny_checkpoint), device="cpu").model
    del model.model.decoder.layers[0].experts.act_fn
    assert missing_internals(model) == ["layer.experts.act_fn (used by grouped_moe)"]


def test_the_tested_range_is_the_one_pyproject_and_constraints_state():
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    lowest = next(re.match(r"transformers>=([\d.]+)", d) for d in dependencies if d.startswith("transformers"))
    pinned = re.search(r"^transformers==([\d.]+)$", (ROOT / "constraints.txt").read_text(), re.MULTILINE)
    assert lowest is not None and pinned is not None
    assert Version(TESTED_TRANSFORMERS[0]) == Version(lowest.group(1))
    assert TESTED_TRANSFORMERS[1] == pinned.group(1)


def test_checkpoints_load_without_hub_kernels(tiny_checkpoint: Path):
    # transformers 5.25 turned Hub kernels on by default: downloaded at load, which fails offline on a GPU.
    model = load_checkpoint(str(tiny_checkpoint), device="cpu").model
    assert getattr(model, "use_kernels", False) is False
