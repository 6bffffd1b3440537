"""Loading checkpoints: the path users take, and a one-line actionable error for each way it can fail."""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path

import pytest

from diffusion_copilot.engine import CheckpointError, load_checkpoint


def test_loads_a_saved_checkpoint_with_its_tokenizer_and_sampler(tiny_checkpoint: Path):
    loaded = load_checkpoint(str(tiny_checkpoint), device="cpu")
    assert type(loaded.model).__name__ == "DiffusionGemmaForBlockDiffusion"
    assert loaded.tokenizer.convert_tokens_to_ids(["<pad>", "<eos>", "<bos>"]) == [0, 1, 2]
    assert loaded.params.max_denoising_steps == 48 and loaded.params.entropy_bound == 0.1
    assert loaded.has_random_weights
    enc, dec = loaded.model.model.encoder.language_model, loaded.model.model.decoder
    assert enc.layers[0].self_attn.q_proj.weight.data_ptr() == dec.layers[0].self_attn.q_proj.weight.data_ptr()


def _copy(checkpoint: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(checkpoint, target)
    return target


def _broken_config(path: Path) -> None:
    (path / "config.json").write_text("{ not json")


def _wrong_type(path: Path) -> None:
    config = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**config, "model_type": "llama"}))


def _truncated_weights(path: Path) -> None:
    weights = path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])


def _no_tokenizer(path: Path) -> None:
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (path / name).unlink()


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (_broken_config, "corrupt"),
        (_wrong_type, "not DiffusionGemma"),
        (_truncated_weights, "incomplete or corrupt"),
        (_no_tokenizer, "tokenizer"),
    ],
)
def test_damaged_checkpoints_give_one_line_errors(tiny_checkpoint: Path, tmp_path: Path, damage, message):
    copy = _copy(tiny_checkpoint, tmp_path)
    damage(copy)
    with pytest.raises(CheckpointError) as raised:
        load_checkpoint(str(copy), device="cpu")
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("/nonexistent/model", "no checkpoint directory"),
        ("nobody/not-a-cached-model", "not in the local Hugging Face cache"),
    ],
)
def test_missing_models_say_what_to_do(source: str, message: str):
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(source, device="cpu")


def test_unknown_device_and_dtype(tiny_checkpoint: Path):
    with pytest.raises(CheckpointError, match="dtype"):
        load_checkpoint(str(tiny_checkpoint), device="cpu", dtype="int3")
    with pytest.raises(CheckpointError, match="device"):
        load_checkpoint(str(tiny_checkpoint), device="tpu:7")


def test_pickled_weights_are_refused(tiny_checkpoint: Path, tmp_path: Path):
    """Loading a pickle can run code: a checkpoint with only .bin weights gets a one-line error, not a load."""
    import torch
    from safetensors.torch import load_file

    copy = _copy(tiny_checkpoint, tmp_path)
    torch.save(load_file(copy / "model.safetensors"), copy / "pytorch_model.bin")  # the same weights, pickled
    (copy / "model.safetensors").unlink()
    with pytest.raises(CheckpointError) as raised:
        load_checkpoint(str(copy), device="cpu")
    message = str(raised.value)
    assert "pytorch_model.bin" in message and "safetensors" in message and "\n" not in message


def test_code_in_a_checkpoint_is_never_run(tiny_checkpoint: Path, tmp_path: Path):
    """A tokenizer config that names a class in the checkpoint's own Python file does not import that file."""
    copy = _copy(tiny_checkpoint, tmp_path)
    marker = tmp_path / "ran"
    (copy / "custom_tokenizer.py").write_text(f"import pathlib\npathlib.Path({str(marker)!r}).touch()\n")
    config_path = copy / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config["auto_map"] = {"AutoTokenizer": ["custom_tokenizer.CustomTokenizer", None]}
    config_path.write_text(json.dumps(config))
    with contextlib.suppress(CheckpointError):  # refusing is fine too; running the file is not
        load_checkpoint(str(copy), device="cpu")
    assert not marker.exists()
