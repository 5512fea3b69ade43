"""Prometheus metrics of a server (``GET /metrics``). With ``PERSONAE_WORKERS`` > 1 each
worker writes its values under the supervisor's ``metrics_dir`` (prometheus-client's
multiprocess mode, which the supervisor turns on for its workers), and any worker's
``/metrics`` answers with the sum over all of them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


@dataclass(frozen=True, slots=True)
class Metrics:
    registry: CollectorRegistry
    turns: Counter
    turn_errors: Counter
    critical_path: Histogram
    first_token: Histogram
    turn_latency: Histogram
    connections: Gauge
    events: Counter
    client_errors: Counter
    origins_refused: Counter
    malformed_frames: Counter
    client_aborts: Counter
    connections_refused: Counter
    step_errors: Counter
    memories_lost: Counter

    @classmethod
    def create(cls) -> Metrics:
        """A fresh registry (one per app, so tests and several apps never collide)."""
        r = CollectorRegistry()
        return cls(
            registry=r,
            turns=Counter("personae_turns", "persona turns run, by status", ["status"], registry=r),
            turn_errors=Counter(
                "personae_turn_errors", "failed turns by error code", ["code"], registry=r
            ),
            critical_path=Histogram(
                "personae_critical_path_seconds",
                "load persona + retrieve memories + compose prompt",
                buckets=_LATENCY_BUCKETS,
                registry=r,
            ),
            first_token=Histogram(
                "personae_first_token_seconds",
                "from the user message being stored to the first reply token",
                buckets=_LATENCY_BUCKETS,
                registry=r,
            ),
            turn_latency=Histogram(
                "personae_turn_seconds",
                "a whole turn, to the reply being stored",
                buckets=_LATENCY_BUCKETS,
                registry=r,
            ),
            connections=Gauge(
                "personae_connections",
                "open Socket.IO connections",
                registry=r,
                multiprocess_mode="livesum",  # with workers: the live ones' sum
            ),
            events=Counter("personae_events", "client events handled", ["event"], registry=r),
            client_errors=Counter(
                "personae_client_errors",
                "errors returned to clients, by code",
                ["code"],
                registry=r,
            ),
            origins_refused=Counter(
                "personae_origins_refused",
                "requests refused for a foreign Origin header",
                registry=r,
            ),
            malformed_frames=Counter(
                "personae_malformed_frames",
                "Socket.IO frames that could not be parsed or dispatched",
                registry=r,
            ),
            client_aborts=Counter(
                "personae_client_aborts",
                "HTTP requests the client abandoned before the server answered",
                registry=r,
            ),
            connections_refused=Counter(
                "personae_connections_refused",
                "connections closed at once: their client address held too many",
                registry=r,
            ),
            step_errors=Counter(
                "personae_turn_step_errors",
                "steps after a stored reply that failed (the reply stands), by step",
                ["step"],
                registry=r,
            ),
            memories_lost=Counter(
                "personae_memories_lost",
                "lines that could not be stored as memories (the vector store was down)",
                registry=r,
            ),
        )


def exposition(metrics: Metrics, shared_dir: Path | None) -> bytes:
    """The Prometheus text: this process's metrics, or (``shared_dir``: workers) the sum
    of every worker's."""
    if shared_dir is None:
        return bytes(generate_latest(metrics.registry))
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(shared_dir))  # type: ignore[no-untyped-call]
    return bytes(generate_latest(registry))
