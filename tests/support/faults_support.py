"""Fault-suite support (issue 16): quick failover settings, a SIGKILL that leaves no orphan, the workers'
counters, and the golden feed of the recovery tests split into stages."""

from __future__ import annotations

import itertools
import os
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import psutil

from cityscreen.events import CleanEvent
from cityscreen.settings import Settings
from cityscreen.store_keys import STATS_KEY
from services.stack.procs import pid_alive
from tests.support.reference_aggregates import reference_window_aggregates
from tests.support.streams_support import (
    expected_frames,
    idle_phones,
    make_raw_events,
    persons_total,
    to_clean,
)

# A killed worker holds its partitions until the broker gives up on it: 10 s instead of Faust's 60 s
# per kill (the broker's smallest allowed session is 6 s).
FAILOVER_S = 10.0


def quick_failover(settings: Settings, **window: Any) -> Settings:
    """`settings` with a short group session (and window settings overridden, e.g. idle_close_s)."""
    return settings.model_copy(
        update={
            "kafka": settings.kafka.model_copy(update={"session_timeout_s": FAILOVER_S}),
            "window": settings.window.model_copy(update=window),
        }
    )


def sigkill(proc: Any, wait_for: Callable[..., Any]) -> None:
    """SIGKILL a spawned worker (no cleanup of any kind runs) and wait until it and its children (the
    gate process) are gone, so nothing of it still writes when the test goes on."""
    children = [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
    os.kill(proc.pid, signal.SIGKILL)
    wait_for(lambda: not proc.is_alive(), what=f"{proc.name} to die")
    wait_for(lambda: not any(pid_alive(c) for c in children), what=f"{proc.name}'s children to end with it")


def stat(client: Any, name: str) -> int:
    """One worker counter from the stats hash (0 before it is first counted)."""
    return int(client.hget(STATS_KEY, name) or 0)


@dataclass
class GoldenFeed:
    """The recovery tests' events (most persons known only from the carry), their golden frames, and
    the clean events cut into stages at event times."""

    clean: list[CleanEvent]
    expected: dict[tuple[int, int], bytes]
    windows: int

    def stages(self, cuts_ms: Sequence[int]) -> list[list[CleanEvent]]:
        bounds = [None, *cuts_ms, None]
        return [
            [e for e in self.clean if (lo is None or e.ts_ms >= lo) and (hi is None or e.ts_ms < hi)]
            for lo, hi in itertools.pairwise(bounds)
        ]


def golden_feed(settings: Settings) -> GoldenFeed:
    raw = idle_phones(make_raw_events(persons=400, minutes=4), every=3)
    reference = reference_window_aggregates(raw, settings)
    assert persons_total(reference[-1]) > 2 * persons_total(reference[-1], "active.persons")
    expected = expected_frames(reference, settings)
    return GoldenFeed([to_clean(r, settings) for r in raw], expected, len({w for _, w in expected}))


AGGREGATE_GROUP = "cityscreen-aggregate"  # the workers' default groups
INGEST_GROUP = "cityscreen-ingest"


def caught_up(settings: Settings, group: str, topics: Sequence[str]) -> bool:
    """Whether `group` has committed everything written to `topics` (no lag), and written anything."""
    import asyncio

    from services.bench.probes import group_lag

    lag, end = asyncio.run(group_lag(settings.kafka.bootstrap, group, list(topics)))
    return end > 0 and lag == 0


class LiveClient:
    """A `/ws/live` subscriber in its own thread that reconnects whenever its socket ends (as the web map
    does), recording the type and window of every message it is sent."""

    def __init__(self, settings: Settings, res: int) -> None:
        import threading

        gw = settings.gateway
        self.url = f"ws://{gw.host}:{gw.port}/ws/live?token={gw.operator_tokens[0]}"
        self.res = res
        self.messages: list[tuple[int, str, int | None]] = []  # (connection number, type, window)
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="live-client", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import json
        import time

        from websockets.exceptions import WebSocketException
        from websockets.sync.client import connect

        while not self._stop.is_set():
            try:
                with connect(self.url, open_timeout=5) as ws:
                    self.connections += 1
                    ws.send(json.dumps({"type": "subscribe", "res": self.res}))
                    while not self._stop.is_set():
                        try:
                            message = json.loads(ws.recv(timeout=0.5))
                        except TimeoutError:
                            continue
                        kind, window = message["type"], message.get("window_start_ms")
                        self.messages.append((self.connections, kind, window))
            except (OSError, WebSocketException):
                time.sleep(0.2)  # the gateway is away: try again, as the page does

    def latest_window(self) -> int | None:
        """The newest window this client was sent as a frame or snapshot."""
        shown = [w for _, kind, w in self.messages if kind in ("frame", "snapshot") and w is not None]
        return max(shown, default=None)

    def first_message(self, connection: int) -> tuple[str, int | None] | None:
        """(type, window) of the first message on the given connection (1 = the first), if any yet."""
        return next(((k, w) for c, k, w in self.messages if c == connection), None)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
