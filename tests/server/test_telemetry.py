"""Local telemetry: events in SQLite, and the summary `diffusion-copilot stats` prints."""

from __future__ import annotations

import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

from diffusion_copilot.server.telemetry import Telemetry, percentile, read_stats, stats_table


def test_events_and_stats(tmp_path: Path) -> None:
    path = tmp_path / "t.sqlite3"
    telemetry = Telemetry(path)
    for index, latency in enumerate([10.0, 20.0, 30.0, 40.0]):
        telemetry.answered(f"c{index}", "automatic", "python", "engine", 1, latency)
    telemetry.answered("c9", "automatic", "python", "engine", 0, 999.0)  # no items: not a latency sample
    telemetry.answered("c10", "invoked", "go", "cache", 3, 1.0)
    telemetry.shown("c0")
    telemetry.shown("c1")
    telemetry.accepted("c1", 5)
    telemetry.accepted("c10")
    telemetry.close()
    stats = {s.trigger: s for s in read_stats(path)}
    automatic = stats["automatic"]
    assert (automatic.answered, automatic.with_items, automatic.shown, automatic.accepted) == (5, 4, 2, 1)
    assert automatic.acceptance_rate == 0.5
    assert (automatic.latency_p50_ms, automatic.latency_p90_ms) == (20.0, 40.0)
    assert stats["invoked"].acceptance_rate == 1.0
    assert "automatic" in stats_table(read_stats(path))


def test_percentile() -> None:
    assert percentile([], 0.5) is None
    assert percentile([3.0, 1.0, 2.0], 0.5) == 2.0


def test_unwritable_file_disables_telemetry(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    telemetry = Telemetry(blocker / "t.sqlite3")  # its directory cannot be made
    telemetry.answered("c1", "automatic", "python", "engine", 1, 1.0)
    assert read_stats(blocker / "t.sqlite3") == ()


def test_stats_command(tmp_path: Path) -> None:
    path = tmp_path / "t.sqlite3"
    Telemetry(path).answered("c1", "invoked", "python", "engine", 2, 12.5)
    done = subprocess.run([sys.executable, "-m", "diffusion_copilot.server.cli", "stats", "--file", str(path)],
                          capture_output=True, text=True, check=True)
    assert "invoked" in done.stdout and "12.5" in done.stdout
    empty = subprocess.run([sys.executable, "-m", "diffusion_copilot.server.cli", "stats", "--file",
                            str(tmp_path / "none")], capture_output=True, text=True, check=True)
    assert "no completions recorded" in empty.stdout


WRITER = """
import sys
from pathlib import Path
from diffusion_copilot.server.telemetry import Telemetry

telemetry = Telemetry(Path(sys.argv[1]))
sys.stdin.readline()  # both writers start together
for _ in range(int(sys.argv[2])):
    telemetry.answered(telemetry.new_id(), "automatic", "python", "engine", 1, 5.0)
telemetry.close()
"""


def test_two_processes_writing_one_file_keep_every_row(tmp_path: Path) -> None:
    path, rows = tmp_path / "t.sqlite3", 200
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(rows)], stdin=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for writer in writers:
        assert writer.stdin is not None
        writer.stdin.write("go\n")
        writer.stdin.flush()
    for writer in writers:
        _, err = writer.communicate(timeout=60)
        assert writer.returncode == 0 and "telemetry" not in err, err
    with sqlite3.connect(path) as db:
        count, sessions = db.execute("SELECT COUNT(*), COUNT(DISTINCT session) FROM completions").fetchone()
    assert (count, sessions) == (2 * rows, 2)
    assert read_stats(path)[0].answered == 2 * rows


OLD_SCHEMA = """
CREATE TABLE completions (id TEXT PRIMARY KEY, created_s REAL NOT NULL, trigger TEXT NOT NULL,
    language TEXT NOT NULL, source TEXT NOT NULL, items INTEGER NOT NULL, latency_ms REAL NOT NULL,
    shown INTEGER NOT NULL DEFAULT 0, accepted INTEGER NOT NULL DEFAULT 0, accepted_chars INTEGER NOT NULL DEFAULT 0);
INSERT INTO completions (id, created_s, trigger, language, source, items, latency_ms, shown, accepted)
    VALUES ('c1', 1.0, 'invoked', 'python', 'engine', 1, 10.0, 1, 1),
           ('c2', 2.0, 'automatic', 'go', 'cache', 2, 3.0, 1, 0);
"""


def test_an_old_file_is_migrated_with_its_rows_and_made_private(tmp_path: Path) -> None:
    path = tmp_path / "t.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript(OLD_SCHEMA)
    path.chmod(0o644)
    telemetry = Telemetry(path)
    telemetry.answered(telemetry.new_id(), "invoked", "python", "engine", 1, 20.0)
    telemetry.accepted("c1", 4)  # an accept of a completion answered before the upgrade still counts
    telemetry.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT id, session, accepted_chars FROM completions ORDER BY created_s").fetchall()
        version = db.execute("PRAGMA user_version").fetchone()[0]
    assert [r[0] for r in rows[:2]] == ["c1", "c2"] and rows[0][1:] == ("", 4)
    assert rows[2][0] == f"{telemetry.session}-1" and rows[2][1] == telemetry.session
    assert version == 2
    stats = {s.trigger: s for s in read_stats(path)}
    assert (stats["invoked"].answered, stats["automatic"].answered) == (2, 1)


def test_a_new_file_is_private(tmp_path: Path) -> None:
    path = tmp_path / "state" / "t.sqlite3"
    telemetry = Telemetry(path)
    telemetry.answered(telemetry.new_id(), "invoked", "python", "engine", 1, 1.0)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in path.parent.glob("t.sqlite3*"))
    telemetry.close()


def test_ids_differ_between_instances(tmp_path: Path) -> None:
    first, second = Telemetry(tmp_path / "t.sqlite3"), Telemetry(tmp_path / "t.sqlite3")
    assert first.new_id() != second.new_id()
    assert "." not in first.new_id()  # the accept command's argument is `<id>.<alternative>`
