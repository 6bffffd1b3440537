"""Local telemetry: events in SQLite, and the summary `diffusion-copilot stats` prints."""

from __future__ import annotations

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
