"""Local telemetry: each answered completion, and whether it was shown and accepted, in one SQLite file in the
user state directory; and the summary `diffusion-copilot stats` prints. Nothing here sends data anywhere.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS completions (
    id TEXT PRIMARY KEY,
    created_s REAL NOT NULL,
    trigger TEXT NOT NULL,          -- automatic | invoked
    language TEXT NOT NULL,
    source TEXT NOT NULL,           -- engine | cache | typing
    items INTEGER NOT NULL,
    latency_ms REAL NOT NULL,       -- request received -> response sent
    shown INTEGER NOT NULL DEFAULT 0,
    accepted INTEGER NOT NULL DEFAULT 0,
    accepted_chars INTEGER NOT NULL DEFAULT 0
);
"""


def state_dir() -> Path:
    """$XDG_STATE_HOME/diffusion-copilot (default ~/.local/state/diffusion-copilot)."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "diffusion-copilot"


def default_path() -> Path:
    return state_dir() / "telemetry.sqlite3"


class Telemetry:
    """Appends events to the SQLite file; a file that cannot be written disables it with one warning."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_path()
        self.db: sqlite3.Connection | None = None

    def _open(self) -> sqlite3.Connection | None:
        if self.db is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.execute("PRAGMA synchronous=NORMAL")
                self.db.executescript(SCHEMA)
            except (sqlite3.Error, OSError) as err:
                log.warning("telemetry disabled: cannot open %s: %s", self.path, err)
                self.path = Path(os.devnull)
                return None
        return self.db

    def _execute(self, sql: str, args: tuple[object, ...]) -> None:
        if str(self.path) == os.devnull:
            return
        db = self._open()
        if db is None:
            return
        try:
            db.execute(sql, args)
        except sqlite3.Error as err:
            log.warning("telemetry: %s", err)

    def answered(self, completion_id: str, trigger: str, language: str, source: str, items: int,
                 latency_ms: float) -> None:
        self._execute("INSERT OR REPLACE INTO completions (id, created_s, trigger, language, source, items, "
                      "latency_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
                      (completion_id, time.time(), trigger, language, source, items, latency_ms))

    def shown(self, completion_id: str) -> None:
        self._execute("UPDATE completions SET shown = 1 WHERE id = ?", (completion_id,))

    def accepted(self, completion_id: str, chars: int | None = None) -> None:
        """A full accept (`chars` None) or a partial one of `chars` characters."""
        if chars is None:
            self._execute("UPDATE completions SET shown = 1, accepted = 1 WHERE id = ?", (completion_id,))
        else:
            self._execute("UPDATE completions SET shown = 1, accepted = 1, accepted_chars = accepted_chars + ? "
                          "WHERE id = ?", (chars, completion_id))

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None


@dataclass(frozen=True)
class TriggerStats:
    """The summary of one trigger kind."""

    trigger: str
    answered: int
    with_items: int
    shown: int
    accepted: int
    latency_p50_ms: float | None
    latency_p90_ms: float | None

    @property
    def acceptance_rate(self) -> float | None:
        return self.accepted / self.shown if self.shown else None


def percentile(values: list[float], fraction: float) -> float | None:
    """The nearest-rank percentile of `values`, or None for none."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))]


def read_stats(path: Path) -> tuple[TriggerStats, ...]:
    """Per-trigger counts, acceptance and latency from the telemetry file."""
    if not path.is_file():
        return ()
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT trigger, items, shown, accepted, latency_ms FROM completions").fetchall()
    stats = []
    for trigger in sorted({r[0] for r in rows}):
        mine = [r for r in rows if r[0] == trigger]
        latencies = [float(r[4]) for r in mine if r[1] > 0]
        stats.append(TriggerStats(trigger, len(mine), sum(1 for r in mine if r[1] > 0), sum(r[2] for r in mine),
                                  sum(r[3] for r in mine), percentile(latencies, 0.5), percentile(latencies, 0.9)))
    return tuple(stats)


def stats_table(stats: tuple[TriggerStats, ...]) -> str:
    """The summary as a text table."""
    if not stats:
        return "no completions recorded yet"

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    lines = [f"{'trigger':10} {'answered':>8} {'w/items':>8} {'shown':>6} {'accepted':>8} {'rate':>6} "
             f"{'p50 ms':>8} {'p90 ms':>8}"]
    for s in stats:
        rate = "-" if s.acceptance_rate is None else f"{s.acceptance_rate:.0%}"
        lines.append(f"{s.trigger:10} {s.answered:8} {s.with_items:8} {s.shown:6} {s.accepted:8} {rate:>6} "
                     f"{ms(s.latency_p50_ms):>8} {ms(s.latency_p90_ms):>8}")
    return "\n".join(lines)
