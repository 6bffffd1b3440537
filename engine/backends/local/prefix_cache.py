"""KV caches of recent prompt prefixes, so that a keystroke only encodes the tokens that changed.

The layout puts the prefix last, so typing extends the prompt; token healing and re-tokenization change only
its last few tokens. Each job stores the cache of its prompt minus the last `lag` tokens, and the next job whose
prompt starts with those tokens encodes only the rest. Sliding-window layers drop what leaves their window, so
while a prompt is encoded they record their full states (`record_past`), which lets one encoder pass yield both
the snapshot behind the end and the whole prompt's cache; then they settle back to their window.

Caches here are shared structurally: a copy gets its own layer objects but the same K/V tensors, which is safe
because nothing writes a cache's tensors in place (the encoder appends by concatenation, the decoder and the
CUDA-graph buffers only read them).
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from typing import Any

import torch


class PrefixCache:
    """An LRU of (token prefix → KV cache snapshot) for batch-1 prompts."""

    def __init__(self, capacity: int = 4, lag: int = 64) -> None:
        self.capacity = capacity
        self.lag = lag  # tokens kept out of a snapshot, so that small edits at the end still reuse it
        self.entries: OrderedDict[tuple[int, ...], Any] = OrderedDict()

    def lookup(self, prompt: tuple[int, ...]) -> tuple[Any, int]:
        """A private copy of the longest cached snapshot that `prompt` starts with, and its length; (None, 0)."""
        best = self._longest(prompt)
        if not best:
            return None, 0
        self.entries.move_to_end(best)
        return shared_copy(self.entries[best]), len(best)

    def knows(self, prompt: tuple[int, ...]) -> bool:
        """Whether some cached snapshot is a prefix of `prompt` (no copy, no change to the LRU order)."""
        return bool(self._longest(prompt))

    def _longest(self, prompt: tuple[int, ...]) -> tuple[int, ...]:
        best: tuple[int, ...] = ()
        for key in self.entries:
            if len(best) < len(key) <= len(prompt) and prompt[: len(key)] == key:
                best = key
        return best

    def snapshot_length(self, prompt_length: int, cached: int) -> int:
        """Where to take this prompt's snapshot: `lag` tokens before its end, never before what is cached."""
        return max(cached, prompt_length - self.lag)

    def store(self, prefix: tuple[int, ...], cache: Any) -> None:
        """Keep a copy of `cache`, which holds exactly the KV of `prefix`."""
        if not prefix or prefix in self.entries:
            return
        self.entries[prefix] = shared_copy(cache)
        while len(self.entries) > self.capacity:
            self.entries.popitem(last=False)

    def clear(self) -> None:
        self.entries.clear()


def shared_copy(cache: Any) -> Any:
    """A copy of `cache` with its own layer objects that shares the layers' tensors (no device copies); objects
    without `layers` are deep-copied."""
    memo: dict[int, Any] = {}
    for layer in getattr(cache, "layers", ()):
        for value in vars(layer).values():
            if isinstance(value, torch.Tensor):
                memo[id(value)] = value  # deepcopy returns what the memo holds: the tensor itself
    return copy.deepcopy(cache, memo)


def start_recording(cache: Any) -> None:
    """Make the sliding-window layers keep every state of the next encoder pass, so `snapshot` can cut it."""
    for layer in cache.layers:
        if getattr(layer, "is_sliding", False):
            layer.activate_past_recording()


def snapshot(cache: Any, drop: int) -> Any:
    """A shared copy of a recording `cache` without its last `drop` tokens, sliding layers cut to their window."""
    copied = shared_copy(cache)
    for layer in copied.layers:
        layer.crop(-drop)  # also trims a sliding layer back to its window
        if getattr(layer, "is_sliding", False):
            layer.record_past = False
        if layer.keys is not None and layer.keys.numel():
            # Compact slices, so a snapshot does not pin the whole prompt's states of the pass that made it.
            layer.keys, layer.values = layer.keys.contiguous(), layer.values.contiguous()
    return copied


def row_of(cache: Any, row: int, length: int) -> Any:
    """A shared copy of one row of a recording, batched `cache`: the first `length` tokens of `row`, as the cache
    would hold them had that row been encoded alone (still recording)."""
    copied = shared_copy(cache)
    for layer in copied.layers:
        layer.keys = layer.keys[row : row + 1, :, :length]
        layer.values = layer.values[row : row + 1, :, :length]
        if getattr(layer, "is_sliding", False):
            layer.cumulative_length = length
    return copied


def stop_recording(cache: Any) -> None:
    """Trim the sliding-window layers back to their window and stop recording."""
    for layer in cache.layers:
        if getattr(layer, "is_sliding", False):
            layer.crop(0)
            layer.record_past = False


def empty_cache(text_config: Any) -> Any:
    """The empty cache the encoder would make itself, made here so that it can record from the start."""
    from transformers import DynamicCache

    return DynamicCache(config=text_config)
