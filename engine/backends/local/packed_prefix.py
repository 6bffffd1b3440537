"""Several prompts' KV caches packed, left-aligned, into one zero-padded read-only decoder cache, with per-row
masks that hide each row's padding: how jobs with different prompts share one decoder forward per step.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch


class _PackedLayer:
    """One layer's prompt K/V of every row, [rows, kv heads, longest prompt, head dim], zero past each row's end,
    and each row's token count (`lengths`, int32 [rows])."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, lengths: torch.Tensor) -> None:
        self.keys = keys
        self.values = values
        self.lengths = lengths


class PackedPrefix:
    """The prompt KV of several prompts as one read-only decoder cache (`layers[i].keys`, `.values`), with each
    row's cached-token count per layer kind; the decoder concatenates it with the canvas and never writes."""

    is_compileable = False

    def __init__(self, layers: list[_PackedLayer], row_lengths: dict[str, list[int]]) -> None:
        self.layers = layers
        self.row_lengths = row_lengths

    @classmethod
    def pack(cls, caches: Sequence[Any], layer_kinds: Sequence[str]) -> PackedPrefix:
        """Stack the rows of `caches` (each [rows_i, heads, length_i, dim] per layer), left-aligned."""
        layers = []
        row_lengths: dict[str, list[int]] = {}
        counts: dict[str, torch.Tensor] = {}  # row_lengths on the device, one tensor per kind
        for index, kind in enumerate(layer_kinds):
            sources = [cache.layers[index] for cache in caches]
            rows = sum(source.keys.shape[0] for source in sources)
            longest = max(source.keys.shape[-2] for source in sources)
            _, heads, _, dim = sources[0].keys.shape
            keys = sources[0].keys.new_zeros(rows, heads, longest, dim)
            values = torch.zeros_like(keys)
            lengths: list[int] = []
            row = 0
            for source in sources:
                count, _, length, _ = source.keys.shape
                keys[row : row + count, :, :length].copy_(source.keys)
                values[row : row + count, :, :length].copy_(source.values)
                lengths += [length] * count
                row += count
            known = row_lengths.setdefault(kind, lengths)
            if known != lengths:
                raise ValueError(f"layers of kind {kind} hold different token counts")
            if kind not in counts:
                counts[kind] = torch.tensor(lengths, dtype=torch.int32, device=keys.device)
            layers.append(_PackedLayer(keys, values, counts[kind]))
        return cls(layers, row_lengths)

    def masks(self, canvas_length: int) -> dict[str, torch.Tensor]:
        """Per layer kind, [rows, 1, canvas, longest prompt + canvas] bool: True where a canvas query may attend."""
        masks = {}
        for kind, lengths in self.row_lengths.items():
            slots = max(lengths)
            device = self.layers[0].keys.device
            mask = torch.zeros(len(lengths), 1, canvas_length, slots + canvas_length, dtype=torch.bool, device=device)
            for row, length in enumerate(lengths):
                mask[row, ..., :length] = True
            mask[..., slots:] = True
            masks[kind] = mask
        return masks
