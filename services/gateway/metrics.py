"""Prometheus metrics of one gateway app (its own registry, so several apps can live in one process)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest


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
        self.http_unauthorized = Counter(
            "cityscreen_http_unauthorized_total", "REST calls refused for a missing or bad token", registry=r
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
