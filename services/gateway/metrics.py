"""Prometheus metrics of one gateway app (its own registry, so several apps can live in one process), and
the pipeline's figures the workers keep in Redis (they serve no HTTP): every gateway exports the same
pipeline figures, so rules and dashboards take the max over gateways (deploy/observability)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from cityscreen.store_keys import LAG_KEY, STATS_KEY

# stats-hash field -> (metric name without _total, help); the other fields go to cityscreen_pipeline_counter
PIPELINE_COUNTERS = {
    "ingest.accepted": ("cityscreen_ingest_accepted", "raw events the ingest edge accepted"),
    "records": ("cityscreen_aggregate_records", "clean records the aggregate workers applied"),
    "windows_published": ("cityscreen_windows_published", "windows released to Redis and the frames topic"),
    "windows_gated": ("cityscreen_windows_gated", "windows the privacy gate processed"),
    "late_events": ("cityscreen_late_events", "events that arrived after their window closed"),
    "events_counted": ("cityscreen_aggregate_events", "clean events the aggregate workers counted"),
    "events_repeated": (
        "cityscreen_aggregate_repeated_events",
        "clean events the aggregate workers skipped as already counted (ingest wrote them twice)",
    ),
}
DEADLETTER_PREFIX = "deadletter."  # the ingest edge's dead letters, one field per reason
GATE_MS = "gate_ms"


@dataclass
class GatewayMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.ws_clients = Gauge("cityscreen_ws_clients", "open websocket clients", registry=r)
        self.ws_refused = Counter(
            "cityscreen_ws_refused_total", "websockets refused before accept", ["reason"], registry=r
        )
        self.ws_messages_sent = Counter(
            "cityscreen_ws_messages_sent_total",
            "websocket messages sent (counted when a socket closes)",
            registry=r,
        )
        self.ws_frames_conflated = Counter(
            "cityscreen_ws_frames_conflated_total",
            "frames dropped for slow clients (latest wins)",
            registry=r,
        )
        self.ws_now_frames = Counter(
            "cityscreen_ws_now_frames_total",
            "now-layer provisional frames fanned out to websocket watchers (one per tick and watched res)",
            registry=r,
        )
        self.http_unauthorized = Counter(
            "cityscreen_http_unauthorized_total", "REST calls refused for a missing or bad token", registry=r
        )

    def render(
        self, stats: Mapping[bytes, bytes] | None = None, lag: Mapping[bytes, bytes] | None = None
    ) -> bytes:
        """The gateway's metrics, then the pipeline's from the Redis stats and lag hashes (HGETALL)."""
        pipeline = CollectorRegistry(auto_describe=False)
        pipeline.register(PipelineCollector(stats or {}, lag or {}))
        return generate_latest(self.registry) + generate_latest(pipeline)


@dataclass(eq=False)  # the registry keeps collectors in a dict: hashable by identity
class PipelineCollector(Collector):
    """One scrape's snapshot of the workers' counters (`city:stats`) and consumer lag (`city:lag`)."""

    stats: Mapping[bytes, bytes]
    lag: Mapping[bytes, bytes]

    def collect(self) -> Iterator[Metric]:
        values = {k.decode(): int(v) for k, v in self.stats.items()}
        for key, (name, doc) in PIPELINE_COUNTERS.items():
            yield _counter(name, doc, values.get(key, 0))
        yield _counter(
            "cityscreen_gate_seconds", "wall time the privacy gate took", values.get(GATE_MS, 0) / 1000
        )
        dead = CounterMetricFamily(
            "cityscreen_dead_lettered", "records sent to the dead-letter topic", labels=["stage", "reason"]
        )
        dead.add_metric(["aggregate", "late_or_undecodable"], values.get("dead_lettered", 0))
        for key, n in values.items():
            if key.startswith(DEADLETTER_PREFIX):
                dead.add_metric(["ingest", key.removeprefix(DEADLETTER_PREFIX)], n)
        yield dead
        known = {*PIPELINE_COUNTERS, GATE_MS, "dead_lettered"}
        other = CounterMetricFamily("cityscreen_pipeline_counter", "other worker counters", labels=["name"])
        for key, n in sorted(values.items()):
            if key not in known and not key.startswith(DEADLETTER_PREFIX):
                other.add_metric([key], n)
        yield other
        lag = GaugeMetricFamily(
            "cityscreen_consumer_lag_records",
            "records a worker's consumer is behind the end of a partition",
            labels=["stage", "topic", "partition"],
        )
        for where, behind in sorted(self.lag.items()):
            lag.add_metric(where.decode().rsplit(":", 2), int(behind))
        yield lag


async def scrape(metrics: GatewayMetrics, redis: Any) -> bytes:
    """/metrics: the gateway's own metrics, and the pipeline's while Redis answers (when it does not,
    the pipeline series go missing, which the `absent` alerts catch, rather than the scrape failing)."""
    try:
        stats, lag = await redis.hgetall(STATS_KEY), await redis.hgetall(LAG_KEY)
    except Exception:  # any Redis failure: serve what the gateway knows itself
        return metrics.render()
    return metrics.render(stats, lag)


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)
