"""Which fused-MoE tiles to launch for a step of so many tokens, per GPU generation and weight format, from the
measured table beside this module (`moe_tiles.json`, written by `bench/gpu/moe_kernels.py --table`).

Each row of the table says: up to this many tokens, these tiles, or `"grouped"` where torch's grouped matmuls
measured faster than every tile (those run instead where this device has them). A GPU generation the table does
not know gets the defaults.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TABLE = Path(__file__).with_name("moe_tiles.json")
GROUPED = "grouped"


@dataclass(frozen=True)
class MoeTiles:
    """Tile sizes and launch settings of both kernels (`block_m` rows of one expert per program)."""

    block_m: int = 16
    block_n: int = 64
    block_k: int = 64
    num_warps: int = 4
    num_stages: int = 3


@dataclass(frozen=True)
class TileChoice:
    """Tiles by token count: `rows` are (up to tokens, tiles or None for the grouped matmuls), by tokens."""

    rows: tuple[tuple[int, MoeTiles | None], ...] = ()
    default: MoeTiles = field(default_factory=MoeTiles)

    def for_tokens(self, tokens: int) -> MoeTiles | None:
        """The row for the smallest measured size at or above `tokens`; the largest row beyond the table."""
        for limit, tiles in self.rows:
            if tokens <= limit:
                return tiles
        return self.rows[-1][1] if self.rows else self.default

    def grouped_above(self) -> int | None:
        """The token count above which the grouped matmuls run, if the table hands any size to them."""
        fused = [limit for limit, tiles in self.rows if tiles is not None]
        if all(tiles is not None for _, tiles in self.rows):
            return None
        return max(fused, default=0)


def tile_choice(capability: tuple[int, int] | None, weight_format: str, table: Path = TABLE) -> TileChoice:
    """The measured choice for a GPU of `capability` (None: no GPU) and `weight_format` ("bf16", "fp8")."""
    if capability is None or not table.exists():
        return TileChoice()
    entry: dict[str, Any] = json.loads(table.read_text()).get(f"sm_{capability[0]}{capability[1]}", {})
    rows = sorted((int(limit), _tiles(spec)) for limit, spec in entry.get(weight_format, []))
    return TileChoice(tuple(rows))


def _tiles(spec: Any) -> MoeTiles | None:
    return None if spec == GROUPED else MoeTiles(**spec)
