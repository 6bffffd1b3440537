"""A cursor at column 0 of an empty line (after Enter), through the real language server and the embedded default
model: its trained weights are not pinned to re-create what token healing cut (random weights are), so this is
where a canvas that skips the healed newlines shows up as an empty answer.
"""

from __future__ import annotations

import pytest
from lsp_harness import LspEnv, lsp_env, started
from lsprotocol import types as t

__all__ = ["lsp_env"]
URI = "file:///work/imports.py"
# Enter pressed on the empty line between the two imports: the cursor sits on a new empty line at column 0.
TEXT = "import sys\n\n\nimport os\n"
CURSOR = (2, 0)


@pytest.mark.parametrize("invoked", [False, True], ids=["automatic", "invoked"])
async def test_an_empty_line_at_column_zero_gets_a_completion(lsp_env: LspEnv, invoked: bool) -> None:
    settings = {**lsp_env.settings(seed=0, latencyBudgetMs=60_000, maxSteps=24, canvasLength=64, minAcceptance=0),
                "model": None}  # the gate would hide most automatic completions; this is about token healing
    async with started(lsp_env, settings) as s:
        ready = await s.wait_ready()
        assert "random weights" not in ready.get("message", ""), ready
        s.open(URI, TEXT)
        result = await s.complete(URI, *CURSOR, invoked=invoked)
    assert result is not None and result.items, "no completion at column 0 of an empty line"
    for item in result.items:
        assert item.range == t.Range(start=t.Position(*CURSOR), end=t.Position(*CURSOR))
        assert isinstance(item.insert_text, str) and item.insert_text.strip()
        assert not item.insert_text.startswith("\n"), "the healed newlines are already in the document"
