"""Local telemetry: each answered completion, and whether it was shown and accepted, in one SQLite file in the
user state directory; and the summary `diffusion-copilot stats` prints. Nothing here sends data anywhere.
"""

from __future__ import annotations

import logging
import os
import secrets
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2  # 1: ids `c<n>` counted per process, so each server overwrote the rows of the ones before
SCHEMA = """
CREATE TABLE IF NOT EXISTS completions (
    id TEXT PRIMARY KEY,            -- <session>-<n>: unique across server processes (rows of version 1: c<n>)
    created_s REAL NOT NULL,
    trigger TEXT NOT NULL,          -- automatic | invoked
    language TEXT NOT NULL,
    source TEXT NOT NULL,           -- engine | cache | typing
    items INTEGER NOT NULL,
    latency_ms REAL NOT NULL,       -- request received -> response sent
    shown INTEGER NOT NULL DEFAULT 0,
    accepted INTEGER NOT NULL DEFAULT 0,
    accepted_chars INTEGER NOT NULL DEFAULT 0,
    session TEXT NOT NULL DEFAULT ''  -- the server process that answered ('' for rows of version 1)
);
"""
BUSY_TIMEOUT_MS = 5000  # how long a write waits while another window's server holds the file
FILE_MODE = 0o600  # completions say what the user edits: the file is theirs alone


def state_dir() -> Path:
    """$XDG_STATE_HOME/diffusion-copilot (default ~/.local/state/diffusion-copilot)."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "diffusion-copilot"


def default_path() -> Path:
    return state_dir() / "telemetry.sqlite3"


class Telemetry:
    """Appends events to the SQLite file, which the servers of several editor windows share (WAL, a busy
    timeout); a file that cannot be written disables it with one warning. Completion ids start with a random
    session name, so no two processes write the same row."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_path()
        self.db: sqlite3.Connection | None = None
        self.session = secrets.token_hex(4)
        self.count = 0

    def new_id(self) -> str:
        """A completion id no other server process uses: `<session>-<n>`."""
        self.count += 1
        return f"{self.session}-{self.count}"

    def _open(self) -> sqlite3.Connection | None:
        if self.db is None:
            try:
                self.db = connect(self.path)
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
        self._execute("INSERT INTO completions (id, created_s, trigger, language, source, items, latency_ms, "
                      "session) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                      (completion_id, time.time(), trigger, language, source, items, latency_ms, self.session))

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


def connect(path: Path) -> sqlite3.Connection:
    """The telemetry file, made private to the user, in WAL mode, at the current schema (older rows kept)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE))
    os.chmod(path, FILE_MODE)  # a file made by an older version was world-readable; SQLite gives -wal/-shm its mode
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000)
        try:
            db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            migrate(db)
            return db
        except sqlite3.OperationalError as err:
            db.close()
            # switching to WAL while another window's server opens the same new file fails at once, unlike writes
            if "locked" not in str(err) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)
        except sqlite3.Error:
            db.close()
            raise


def migrate(db: sqlite3.Connection) -> None:
    """Bring the file to SCHEMA_VERSION in one transaction, keeping its rows (version 1 lacks `session`)."""
    db.execute("BEGIN IMMEDIATE")  # two windows starting at once: one migrates, the other waits and sees it done
    try:
        if db.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
            db.execute(SCHEMA)
            columns = {row[1] for row in db.execute("PRAGMA table_info(completions)")}
            if "session" not in columns:
                db.execute("ALTER TABLE completions ADD COLUMN session TEXT NOT NULL DEFAULT ''")
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


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
