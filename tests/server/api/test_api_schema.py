"""The served OpenAPI schema against the running API server, with schemathesis: generated and mutated bodies for
every operation must never get a server error, every answer must match what the schema documents, and a body the
schema calls valid must not be rejected (positive_data_acceptance: no 400 for it).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from api_harness import running_api
from lsp_harness import LspEnv, lsp_env

__all__ = ["lsp_env"]
MAX_EXAMPLES = 15  # per operation and phase: about a minute on two cores


def test_committed_schema_is_the_served_one() -> None:
    done = subprocess.run([sys.executable, "-m", "diffusion_copilot.server.cli", "api", "--print-openapi"],
                          capture_output=True, text=True, check=True)
    committed = json.loads((Path(__file__).parents[3] / "docs" / "openapi.json").read_text())
    assert json.loads(done.stdout) == committed, \
        "docs/openapi.json is stale: diffusion-copilot api --print-openapi > docs/openapi.json"


@pytest.mark.slow
def test_schemathesis_finds_no_server_error(lsp_env: LspEnv, tmp_path: Path) -> None:
    with running_api(lsp_env.env, lsp_env.model, tmp_path, "--time-budget-ms", "1000") as server:
        command = [str(Path(sys.executable).parent / "schemathesis"), "run", f"{server.url}/openapi.json",
                   "--checks", "all",
                   "--max-examples", str(MAX_EXAMPLES), "--seed", "1", "--workers", "1", "--request-timeout", "30"]
        hooks = Path(__file__).parents[2] / "harness" / "schemathesis_hooks.py"
        env = {**lsp_env.env, "SCHEMATHESIS_HOOKS": str(hooks)}
        done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=540,
                              check=False)
    assert done.returncode == 0, done.stdout[-8000:] + done.stderr[-2000:]
    assert "No issues found" in done.stdout
    assert "Traceback" not in server.log.read_text()
