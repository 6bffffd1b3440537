"""KV caches of recent prompt prefixes, so that a keystroke only encodes the tokens that changed.

The layout puts the prefix last, so typing extends the prompt; token healing and re-tokenization change only
its last few tokens. Each job stores the cache of its prompt minus the last `lag` tokens, and the next job whose
prompt starts with those tokens encodes only the rest. Sliding-window layers cannot be cropped back, which is why
snapshots are taken behind the end rather than cropped afterwards.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from typing import Any


class PrefixCache:
    """An LRU of (token prefix → KV cache snapshot) for batch-1 prompts."""

    def __init__(self, capacity: int = 4, lag: int = 64) -> None:
        self.capacity = capacity
        self.lag = lag  # tokens kept out of a snapshot, so that small edits at the end still reuse it
        self.entries: OrderedDict[tuple[int, ...], Any] = OrderedDict()

    def lookup(self, prompt: tuple[int, ...]) -> tuple[Any, int]:
        """A private copy of the longest cached snapshot that `prompt` starts with, and its length; (None, 0)."""
        best: tuple[int, ...] = ()
        for key in self.entries:
            if len(best) < len(key) <= len(prompt) and prompt[: len(key)] == key:
                best = key
        if not best:
            return None, 0
        self.entries.move_to_end(best)
        return copy.deepcopy(self.entries[best]), len(best)

    def snapshot_length(self, prompt_length: int, cached: int) -> int:
        """Where to take this prompt's snapshot: `lag` tokens before its end, never before what is cached."""
        return max(cached, prompt_length - self.lag)

    def store(self, prefix: tuple[int, ...], cache: Any) -> None:
        """Keep a copy of `cache`, which holds exactly the KV of `prefix`."""
        if not prefix or prefix in self.entries:
            return
        self.entries[prefix] = copy.deepcopy(cache)
        while len(self.entries) > self.capacity:
            self.entries.popitem(last=False)

    def clear(self) -> None:
        self.entries.clear()
