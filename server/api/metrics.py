"""The HTTP API's counters and histograms, rendered in the Prometheus text format (version 0.0.4) for /metrics.

Owned by one app; updated from its event loop only, so no locks.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field

from diffusion_copilot.engine.protocol import EngineState

LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
STEP_BUCKETS = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 128, 256, 512)
PREFIX = "diffusion_copilot_api"


@dataclass
class Histogram:
    """Cumulative-bucket histogram of one series."""

    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        self.counts = [0] * len(self.bounds)

    def observe(self, value: float) -> None:
        index = bisect.bisect_left(self.bounds, value)
        if index < len(self.counts):
            self.counts[index] += 1
        self.total += value
        self.count += 1

    def lines(self, name: str, labels: str) -> Iterable[str]:
        running = 0
        sep = "," if labels else ""
        for bound, count in zip(self.bounds, self.counts, strict=True):
            running += count
            yield f'{name}_bucket{{{labels}{sep}le="{_number(bound)}"}} {running}'
        yield f'{name}_bucket{{{labels}{sep}le="+Inf"}} {self.count}'
        braces = f"{{{labels}}}" if labels else ""
        yield f"{name}_sum{braces} {_number(self.total)}"
        yield f"{name}_count{braces} {self.count}"


def _number(value: float) -> str:
    return repr(float(value)) if not float(value).is_integer() else f"{value:.1f}"


def _labels(**labels: str) -> str:
    return ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


@dataclass
class ApiMetrics:
    """What /metrics reports."""

    requests: dict[tuple[str, int], int] = field(default_factory=dict)  # (endpoint, status) → count
    latency: dict[str, Histogram] = field(default_factory=dict)  # endpoint → request seconds
    engine_latency: Histogram = field(default_factory=lambda: Histogram(LATENCY_BUCKETS_S))
    steps: Histogram = field(default_factory=lambda: Histogram(STEP_BUCKETS))
    cancellations: dict[str, int] = field(default_factory=dict)  # reason → count
    rejections: dict[str, int] = field(default_factory=dict)  # reason → count
    in_flight: int = 0
    engine_state: EngineState = EngineState.LOADING

    def request_done(self, endpoint: str, status: int, seconds: float) -> None:
        self.requests[(endpoint, status)] = self.requests.get((endpoint, status), 0) + 1
        self.latency.setdefault(endpoint, Histogram(LATENCY_BUCKETS_S)).observe(seconds)

    def engine_done(self, seconds: float, steps: int) -> None:
        self.engine_latency.observe(seconds)
        self.steps.observe(steps)

    def cancelled(self, reason: str) -> None:
        self.cancellations[reason] = self.cancellations.get(reason, 0) + 1

    def rejected(self, reason: str) -> None:
        self.rejections[reason] = self.rejections.get(reason, 0) + 1

    def render(self) -> str:
        """The exposition text."""
        out: list[str] = []

        def family(name: str, kind: str, help_text: str) -> str:
            full = f"{PREFIX}_{name}"
            out.extend((f"# HELP {full} {help_text}", f"# TYPE {full} {kind}"))
            return full

        name = family("requests_total", "counter", "HTTP requests answered, by endpoint and status code.")
        out.extend(f"{name}{{{_labels(endpoint=e, status=str(s))}}} {n}" for (e, s), n in sorted(self.requests.items()))
        name = family("request_duration_seconds", "histogram", "Time from request received to answer sent.")
        for endpoint, histogram in sorted(self.latency.items()):
            out.extend(histogram.lines(name, _labels(endpoint=endpoint)))
        name = family("engine_duration_seconds", "histogram", "Time from engine request sent to its reply.")
        out.extend(self.engine_latency.lines(name, ""))
        name = family("steps_per_request", "histogram", "Denoising steps the engine ran for a request.")
        out.extend(self.steps.lines(name, ""))
        name = family("queue_depth", "gauge", "Completion requests admitted and not yet answered.")
        out.append(f"{name} {self.in_flight}")
        name = family("cancellations_total", "counter", "Engine jobs cancelled, by reason.")
        reasons = {"client_disconnected": 0, "deadline": 0, **self.cancellations}
        out.extend(f"{name}{{{_labels(reason=r)}}} {n}" for r, n in sorted(reasons.items()))
        name = family("rejections_total", "counter", "Requests refused with 429 or 503, by reason.")
        reasons = {"queue_full": 0, "busy": 0, **self.rejections}
        out.extend(f"{name}{{{_labels(reason=r)}}} {n}" for r, n in sorted(reasons.items()))
        name = family("engine_up", "gauge", "1 when the engine process is ready or busy.")
        out.append(f"{name} {int(self.engine_state in (EngineState.READY, EngineState.BUSY))}")
        return "\n".join(out) + "\n"
