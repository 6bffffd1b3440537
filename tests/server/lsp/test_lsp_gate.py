"""The acceptance gate through the real language server and the embedded default model: an automatic completion
of the issue's `def fibonacci(n):` body is hidden, minAcceptance 0 shows it, and an explicit request shows it
anyway (server/completion/gate.py, models/default/gate.json).
"""

from __future__ import annotations

from typing import Any

import pytest
from lsp_harness import LspEnv, lsp_env, started

__all__ = ["lsp_env"]
URI = "file:///work/fib.py"
TEXT = 'def fibonacci(n):\n    """Return the n-th Fibonacci number."""\n    \n'
CURSOR = (2, 4)


def default_model(lsp_env: LspEnv, **overrides: Any) -> dict[str, Any]:
    """The embedded default model at its default completion settings, seeded, with no deadline on a busy CPU."""
    return {**lsp_env.settings(seed=0, latencyBudgetMs=60_000, maxSteps=16, canvasLength=32, **overrides),
            "model": None}


@pytest.mark.parametrize(("min_acceptance", "invoked", "shown"), [
    (None, False, False),  # the gate, at the threshold fitted for the model: the nonsense is hidden
    (0, False, True),  # the setting turns it off
    (None, True, True),  # asked for: always shown
], ids=["gated", "setting-off", "invoked"])
async def test_the_gate_hides_the_default_models_fibonacci_guess(lsp_env: LspEnv, min_acceptance: float | None,
                                                                invoked: bool, shown: bool) -> None:
    async with started(lsp_env, default_model(lsp_env, minAcceptance=min_acceptance)) as s:
        ready = await s.wait_ready()
        assert "random weights" not in ready.get("message", ""), ready
        s.open(URI, TEXT)
        result = await s.complete(URI, *CURSOR, invoked=invoked)
    texts = [item.insert_text for item in result.items] if result is not None else []
    assert bool(texts) is shown, texts
