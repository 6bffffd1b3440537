"""The vLLM replicas one backend talks to, and which one takes the next request: the least busy of those that
answer, with failed replicas skipped until their back-off runs out or a health probe finds them up again.

Owned by the backend's event-loop thread; nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Replica:
    """One vLLM server and what this process knows about it."""

    url: str  # base URL, no trailing slash: http://host:8000
    in_flight: int = 0  # requests of this process now streaming from it
    is_healthy: bool = True  # optimistic until a request or a probe fails
    failures: int = 0  # consecutive failures
    retry_at: float = 0.0  # monotonic time before which an unhealthy replica is skipped
    last_error: str | None = None
    requests: int = 0  # requests sent, for the record


@dataclass(frozen=True)
class ReplicaState:
    """A snapshot of one replica, for status and tests."""

    url: str
    in_flight: int
    is_healthy: bool
    requests: int
    last_error: str | None


def normalized_url(url: str) -> str:
    """`url` without trailing slashes or a trailing `/v1`, so that both spellings of a server name it once."""
    url = url.strip().rstrip("/")
    if url.endswith("/v1"):
        url = url[: -len("/v1")]
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"not an http(s) URL: {url!r}")
    return url


class ReplicaSet:
    """Least-busy routing over several replicas."""

    def __init__(self, urls: tuple[str, ...], backoff_s: float, max_backoff_s: float = 30.0) -> None:
        if not urls:
            raise ValueError("at least one vLLM URL is needed")
        unique = list(dict.fromkeys(normalized_url(u) for u in urls))
        self.replicas = [Replica(u) for u in unique]
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.turn = 0  # breaks ties between equally busy replicas, round robin

    def pick(self, now: float, avoid: frozenset[str] = frozenset()) -> Replica:
        """The replica for the next attempt: healthy (or due for a retry) and least busy, preferring those not in
        `avoid`; when every replica is down, the one due back first (a request is the quickest probe)."""
        usable = [r for r in self.replicas if r.is_healthy or r.retry_at <= now]
        fresh = [r for r in usable if r.url not in avoid]
        candidates = fresh or usable
        if not candidates:
            return min(self.replicas, key=lambda r: r.retry_at)
        least = min(r.in_flight for r in candidates)
        tied = [r for r in candidates if r.in_flight == least]
        self.turn += 1
        return tied[self.turn % len(tied)]

    def mark_ok(self, replica: Replica) -> None:
        replica.is_healthy, replica.failures, replica.retry_at = True, 0, 0.0

    def mark_failed(self, replica: Replica, error: str, now: float) -> None:
        """Skip `replica` for a back-off that doubles with each consecutive failure."""
        replica.failures += 1
        replica.is_healthy, replica.last_error = False, error
        replica.retry_at = now + min(self.backoff_s * 2 ** (replica.failures - 1), self.max_backoff_s)

    def states(self) -> tuple[ReplicaState, ...]:
        return tuple(ReplicaState(r.url, r.in_flight, r.is_healthy, r.requests, r.last_error) for r in self.replicas)
