"""The command line as users run it: a real subprocess, one-line errors with exit status 2 for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SOURCE = 'def greet(name: str) -> str:\n    """Say hello."""\n    return "hello " + name\n'


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "diffusion_copilot.server.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "greet.py"
    path.write_text(SOURCE)
    return path


def test_complete_prints_json_with_range_timings_steps_and_confidence(source: Path, tiny_checkpoint: Path):
    done = cli(
        "complete", f"{source}:3:5", "--model", str(tiny_checkpoint), "--json", "--steps", "4", "--seed", "0", "-n", "2"
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["steps"] == 4 and report["model_has_random_weights"] is True
    assert report["timings"]["total_ms"] > 0 and len(report["timings"]["step_ms"]) == 4
    for item in report["items"]:
        assert set(item) == {"text", "confidence", "acceptance", "range"}  # 1-based, like the location given
        assert item["acceptance"] is None  # a checkpoint without a gate.json
        assert item["range"]["start"] == {"line": 3, "column": 5}
        assert 0.0 <= item["confidence"] <= 1.0
    assert "weights are random" in done.stderr


def test_complete_says_when_equal_alternatives_were_merged(source: Path, converging_checkpoint: Path):
    # The converging checkpoint's canvas depends only on the prompt and positions: every alternative is the same.
    done = cli("complete", f"{source}:3:5", "--model", str(converging_checkpoint), "--steps", "4", "-n", "3", "--json")
    assert done.returncode == 0, done.stderr
    shown = len(json.loads(done.stdout)["items"])
    assert shown < 3 and f"{shown} distinct of 3 alternatives" in done.stderr


def test_complete_prints_plain_text(source: Path, tiny_checkpoint: Path):
    done = cli("complete", f"{source}:4:1", "--model", str(tiny_checkpoint), "--steps", "2", "--seed", "1")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr


def _binary(tmp_path: Path) -> str:
    path = tmp_path / "blob.py"
    path.write_bytes(b"\x00\x01\x02abc")
    return f"{path}:1:1"


def _latin1(tmp_path: Path) -> str:
    path = tmp_path / "latin.py"
    path.write_bytes("x = 'caf\xe9'\n".encode("latin-1"))
    return f"{path}:1:1"


def _empty(tmp_path: Path) -> str:
    path = tmp_path / "empty.py"
    path.write_text("")
    return f"{path}:1:1"


def _directory(tmp_path: Path) -> str:
    return f"{tmp_path}:1:1"


@pytest.mark.parametrize(
    ("location", "message"),
    [
        (lambda tmp, src: f"{tmp}/missing.py:1:1", "no such file"),
        (lambda tmp, src: _binary(tmp), "binary"),
        (lambda tmp, src: _latin1(tmp), "not UTF-8"),
        (lambda tmp, src: _empty(tmp), "empty"),
        (lambda tmp, src: _directory(tmp), "not a regular file"),
        (lambda tmp, src: f"{src}:99:1", "line 99 is out of range"),
        (lambda tmp, src: f"{src}:1:200", "column 200 is out of range"),
        (lambda tmp, src: f"{src}:0:1", "1-based"),
        (lambda tmp, src: f"{src}", "FILE:LINE:COL"),
        (lambda tmp, src: f"{src}:a:b", "FILE:LINE:COL"),
    ],
)
def test_bad_input_gives_one_line_and_exit_2(tmp_path: Path, source: Path, location, message: str):
    done = cli("complete", location(tmp_path, source))
    assert done.returncode == 2
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


def test_unknown_model_path(source: Path, tmp_path: Path):
    done = cli("complete", f"{source}:1:1", "--model", str(tmp_path / "no-model"))
    assert done.returncode == 2
    assert "no checkpoint directory" in done.stderr and "Traceback" not in done.stderr


def test_doctor_reports_each_component(tiny_checkpoint: Path):
    done = cli("doctor", "--model", str(tiny_checkpoint))
    assert done.returncode == 0, done.stdout + done.stderr
    for name in ("python", "torch", "cuda", "kernels", "transformers", "model"):
        assert any(line[3:].startswith(name) for line in done.stdout.splitlines())
    assert "random weights" in done.stdout
    assert "kernels       CPU: the stock modules" in done.stdout  # the CI machine has no GPU
    assert "weights: bf16: on the CPU the checkpoint's own format" in done.stdout


@pytest.mark.parametrize(
    ("version", "is_warning"), [("5.19.0", False), ("5.25.0", False), ("5.18.2", True), ("5.26.0.dev0", True)]
)
def test_doctor_warns_outside_the_tested_transformers_range(version: str, is_warning: bool):
    from diffusion_copilot.engine.hf_internals import TESTED_TRANSFORMERS
    from diffusion_copilot.server.cli.doctor import tested_range_check

    assert TESTED_TRANSFORMERS == ("5.19.0", "5.25.0")  # the cases above are chosen around this range
    check = tested_range_check(version)
    assert check.is_warning is is_warning
    assert ("outside the tested range 5.19.0 to 5.25.0" in check.found) is is_warning
