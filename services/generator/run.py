"""The send loop: paces events by event time (real time, N times faster, as fast as possible) or by a
target rate with a ramp, batches them per kind, and reports the rate it achieved.

When it cannot keep up it says so (how far behind, achieved vs. target) instead of silently lagging.
"""

from __future__ import annotations

import asyncio
import math
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from cityscreen.events import RawEvent
from services.generator.sinks import Sink

BEHIND_WARN_S = 2.0  # lag beyond which the run warns that it cannot keep up
WARN_EVERY_S = 10.0


@dataclass
class Pace:
    """speed: event-time seconds per wall second (1 = real time, inf = as fast as possible).
    rate_eps: if set, events go out at this rate (ramping up over ramp_s) stamped with the send time."""

    speed: float = math.inf
    rate_eps: float | None = None
    ramp_s: float = 0.0
    duration_s: float | None = None  # wall seconds, for rate mode
    # real time on the wall clock: an event is due when the clock reads its time, so a run started in
    # the past sends its backlog at once and then keeps pace (`generate --realtime --start ...`)
    anchored: bool = False

    def due_s(self, n: int) -> float:
        """Wall seconds after the start at which the n-th event is due in rate mode."""
        assert self.rate_eps
        ramp_events = self.rate_eps * self.ramp_s / 2
        if n < ramp_events:
            return math.sqrt(2 * n * self.ramp_s / self.rate_eps)
        return self.ramp_s + (n - ramp_events) / self.rate_eps


@dataclass
class RunReport:
    events: int = 0
    wall_s: float = 0.0
    max_behind_s: float = 0.0
    by_kind: dict[str, int] = field(default_factory=dict)
    target_eps: float | None = None

    @property
    def rate_eps(self) -> float:
        return self.events / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def kept_up(self) -> bool:
        if self.target_eps:
            return self.rate_eps >= 0.95 * self.target_eps
        return self.max_behind_s <= BEHIND_WARN_S

    def summary(self) -> str:
        kinds = ", ".join(f"{k}={v}" for k, v in sorted(self.by_kind.items()))
        line = f"sent {self.events} events ({kinds}) in {self.wall_s:.1f} s: {self.rate_eps:,.0f} events/s"
        if self.target_eps:
            line += f" (target {self.target_eps:,.0f}/s)"
        if not self.kept_up:
            line += (
                f"; COULD NOT KEEP UP: achieved {self.rate_eps:,.0f}/s below target"
                if self.target_eps
                else f"; COULD NOT KEEP UP: fell up to {self.max_behind_s:.1f} s behind schedule"
            )
        return line


async def pump(
    events: Iterable[RawEvent],
    sink: Sink,
    pace: Pace,
    *,
    progress: Callable[[int, int], None] | None = None,
    warn: Callable[[str], None] = lambda m: print(m, file=sys.stderr),
) -> RunReport:
    """Send `events` to `sink` at `pace`; returns what was achieved. `progress(events, ts_ms)` ticks."""
    report = RunReport(target_eps=pace.rate_eps)
    t0 = time.monotonic()
    ts0: int | None = None
    last_warn = -math.inf
    await sink.start()
    try:
        for n, event in enumerate(events):
            kind = str(event.__struct_config__.tag)
            now = time.monotonic()
            if pace.rate_eps:
                due = t0 + pace.due_s(n)
                if pace.duration_s is not None and due - t0 >= pace.duration_s:
                    break
                event.ts_ms = int(time.time() * 1000)  # load tests: the simulation gives content, not time
            elif math.isfinite(pace.speed):
                ts0 = event.ts_ms if ts0 is None else ts0
                due = t0 + (event.ts_ms - ts0) / 1000 / pace.speed
            else:
                due = now
            if due > now + 0.005:
                await sink.flush()
                await asyncio.sleep(due - time.monotonic())
            elif now - due > BEHIND_WARN_S:
                report.max_behind_s = max(report.max_behind_s, now - due)
                if now - last_warn > WARN_EVERY_S:
                    warn(f"generator: cannot keep up, {now - due:.1f} s behind schedule")
                    last_warn = now
            await sink.add(event)
            report.events += 1
            report.by_kind[kind] = report.by_kind.get(kind, 0) + 1
            if progress is not None and n % 1000 == 0:
                progress(report.events, event.ts_ms)
        await sink.flush()
    finally:
        await sink.stop()
        report.wall_s = time.monotonic() - t0
    if progress is not None:
        progress(report.events, 0)
    return report
