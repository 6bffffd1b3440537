"""How much of each kind of context goes into a prompt, and how long gathering it may take."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ContextBudget:
    """How much of each kind of context goes into a prompt, and how long gathering it may take. The defaults fill
    about 1,900 tokens of a 2,048-token prompt at ~4 characters per token, so the engine cuts nothing."""

    prefix_chars: int = 3400
    suffix_chars: int = 1200
    definitions_chars: int = 2600
    recent_chars: int = 600
    time_budget_ms: float = 40.0
    near_chars: int = 1500  # the text around the cursor whose identifiers count as "used near the cursor"
    file_chars: int = 20_000  # the text around the cursor whose identifiers count as "used in this file"

    @classmethod
    def for_prompt(cls, prompt_tokens: int, chars_per_token: float = 4.0) -> ContextBudget:
        """The default shares scaled to a checkpoint's prompt length (the defaults suit 2,048 tokens)."""
        scale = max(prompt_tokens, 64) * chars_per_token / (2048 * 4.0)
        base = cls()
        return cls(
            prefix_chars=int(base.prefix_chars * scale),
            suffix_chars=int(base.suffix_chars * scale),
            definitions_chars=int(base.definitions_chars * scale),
            recent_chars=int(base.recent_chars * scale),
        )
