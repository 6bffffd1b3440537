"""What every benchmark's report needs: the commit it measured and nearest-rank percentiles."""

from __future__ import annotations

import os
import platform
import subprocess
from typing import Any


def commit() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False)
    return done.stdout.strip() or "uncommitted"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def cpu_machine() -> dict[str, Any]:
    """The machine a CPU benchmark ran on, the load beside it (other processes share the cores), and the commit."""
    return {
        "device": f"cpu: {platform.machine()}, {os.cpu_count()} cores",
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "commit": commit(),
    }
