"""The send loop of the columnar engine: slices of columns, encoded a batch at a time, paced by event
time (real time, N times faster, as fast as possible) or by a target rate, into a sink.

The per-event loop of `run.pump` costs a few microseconds an event in Python; here the unit is a record
of `batch_events` events (Kafka) or a slice (a file), so a megacity's stream is not held up by it.
"""

from __future__ import annotations

import asyncio
import math
import sys
import time
from collections.abc import Callable, Iterator
from typing import Protocol

from services.generator.columnar.emission import Slice
from services.generator.columnar.engine import Engine
from services.generator.run import BEHIND_WARN_S, WARN_EVERY_S, Pace, RunReport


class RecordSink(Protocol):
    """Receives encoded events: Kafka records (JSON arrays) per kind, or JSON lines in time order."""

    lines: bool  # True: wants `write_lines`; False: wants `send_records`

    async def start(self) -> None: ...
    async def send_records(self, kind: str, records: list[bytes]) -> None: ...
    async def write_lines(self, data: bytes) -> None: ...
    async def flush(self) -> None: ...
    async def stop(self) -> None: ...


class NullSink:
    """Counts what it is given (the benchmark's sink)."""

    lines = False

    def __init__(self) -> None:
        self.records = 0
        self.bytes = 0

    async def start(self) -> None:
        return None

    async def send_records(self, kind: str, records: list[bytes]) -> None:
        self.records += len(records)
        self.bytes += sum(len(r) for r in records)

    async def write_lines(self, data: bytes) -> None:
        self.bytes += len(data)

    async def flush(self) -> None:
        return None

    async def stop(self) -> None:
        return None


def _wall_ms(at_monotonic_s: float) -> int:
    """The wall clock's time, in ms, at a reading of the monotonic clock."""
    return int((time.time() - (time.monotonic() - at_monotonic_s)) * 1000)


class _Clock:
    """When a record is due, and how far behind the run is."""

    def __init__(self, pace: Pace, report: RunReport, warn: Callable[[str], None]) -> None:
        self.pace, self.report, self.warn = pace, report, warn
        self.t0 = time.monotonic()
        self.ts0: int | None = None
        self.last_warn = -math.inf
        # a wall-clock run started in the past is behind on purpose until its backlog is sent
        self.caught_up = not pace.anchored

    def ready(self) -> None:
        """The first slice is computed: a run paced from its own start (a rate, a relative speed) starts
        now. Paced from the setup instead, the seconds the first slice took (a day's plans: tens of
        seconds for a megacity) came out as one burst at startup, far above the rate asked for."""
        paced = self.pace.rate_eps or math.isfinite(self.pace.speed)  # as fast as possible: no schedule
        if paced and not self.pace.anchored:
            self.t0 = time.monotonic()

    async def wait(self, ts_ms: int, sink: RecordSink) -> None:
        if not math.isfinite(self.pace.speed):
            return
        if self.ts0 is None:
            self.ts0 = _wall_ms(self.t0) if self.pace.anchored else ts_ms
        due = self.t0 + (ts_ms - self.ts0) / 1000 / self.pace.speed
        now = time.monotonic()
        if due > now + 0.005:
            self.caught_up = True
            await sink.flush()
            await asyncio.sleep(due - time.monotonic())
        elif now - due <= BEHIND_WARN_S:
            self.caught_up = True
        elif self.caught_up:
            self.report.max_behind_s = max(self.report.max_behind_s, now - due)
            if now - self.last_warn > WARN_EVERY_S:
                self.warn(f"generator: cannot keep up, {now - due:.1f} s behind schedule")
                self.last_warn = now


class SlicesAhead:
    """The engine's slices, each computed in a thread while the one before is sent. Computing a slice
    (a million events at the peak; a new day's plans at midnight) takes seconds on a loaded box, and
    done in line it stopped the feed each time: at 20,000 events/s, 2.6 s without a record every 38 s,
    which held every clean reader back (the now layer's ticks)."""

    def __init__(self, slices: Iterator[Slice]) -> None:
        self.slices = slices
        self.pending: asyncio.Future[Slice | None] | None = None

    def _ask(self) -> asyncio.Future[Slice | None]:
        return asyncio.get_running_loop().run_in_executor(None, next, self.slices, None)

    async def next(self) -> Slice | None:
        """The next slice (None at the end), and the one after it asked for."""
        piece = await (self.pending or self._ask())
        self.pending = self._ask() if piece is not None else None
        return piece

    def drop(self) -> None:
        """The run stopped early: the slice being computed is not wanted (its thread runs out)."""
        if self.pending is not None:
            self.pending.cancel()


async def pump_engine(
    engine: Engine,
    start_ms: int,
    span_s: float,
    sink: RecordSink,
    pace: Pace,
    *,
    batch_events: int = 500,
    max_events: int = 0,
    max_wall_s: float | None = None,
    progress: Callable[[int, int], None] | None = None,
    warn: Callable[[str], None] = lambda m: print(m, file=sys.stderr),
) -> RunReport:
    """Send the engine's events of [start, start + span) to `sink` at `pace`; returns what was achieved."""
    report = RunReport(target_eps=pace.rate_eps)
    clock = _Clock(pace, report, warn)
    await sink.start()
    slices = SlicesAhead(engine.slices(start_ms, span_s))
    try:
        while (piece := await slices.next()) is not None:
            if not report.events:
                clock.ready()
            if pace.rate_eps:
                if not await _send_at_rate(engine, piece, sink, pace, clock, batch_events, report):
                    break
            elif sink.lines:
                limit = (max_events - report.events) if max_events else None
                await _write_lines(engine, piece, sink, clock, batch_events, limit)
                _count(report, piece, min(piece.count(), limit or piece.count()))
            else:
                await _send_records(engine, piece, sink, clock, batch_events)
                _count(report, piece, piece.count())
            if progress is not None:
                progress(report.events, piece.hi_ms)
            if max_events and report.events >= max_events:
                break
            if max_wall_s is not None and time.monotonic() - clock.t0 >= max_wall_s:
                break  # benchmarks: a wall-clock budget, checked once per slice
        await sink.flush()
    finally:
        slices.drop()
        await sink.stop()
        report.wall_s = time.monotonic() - clock.t0
    return report


def _count(report: RunReport, piece: Slice, n: int) -> None:
    report.events += n
    if n == piece.count():
        for kind, cols in piece.cols.items():
            if cols:
                report.by_kind[kind] = report.by_kind.get(kind, 0) + len(cols["ts_ms"])
    else:  # a cut slice (max_events): the kinds are not counted apart
        report.by_kind["mixed"] = report.by_kind.get("mixed", 0) + n


def _time_ordered_batches(piece: Slice, batch: int) -> list[tuple[str, int]]:
    """(kind, first row) of every batch of the slice, in the order of the batches' first events: the
    kinds interleave as their events do. Sent kind after kind, a slice of a million events at the
    morning peak went out as 54 s of SIM records and then 6 s of payments and taps alone, so every
    minute the now layer had no SIM record for 6 s and the closes waited on a watermark."""
    firsts: list[tuple[int, str, int]] = []
    for kind, cols in piece.cols.items():
        if cols:
            starts = range(0, len(cols["ts_ms"]), batch)
            firsts += zip(cols["ts_ms"][::batch].tolist(), [kind] * len(starts), starts, strict=True)
    firsts.sort(key=lambda first: first[0])  # stable: ties keep the kinds' order
    return [(kind, lo) for _, kind, lo in firsts]


async def _send_records(engine: Engine, piece: Slice, sink: RecordSink, clock: _Clock, batch: int) -> None:
    """Records of every kind in the order of their first event, each sent when it is due."""
    encoded = {kind: engine.encoder.arrays(kind, cols, batch) for kind, cols in piece.cols.items() if cols}
    for kind, lo in _time_ordered_batches(piece, batch):
        await clock.wait(int(piece.cols[kind]["ts_ms"][lo]), sink)
        await sink.send_records(kind, [encoded[kind][lo // batch]])


async def _write_lines(
    engine: Engine, piece: Slice, sink: RecordSink, clock: _Clock, batch: int, limit: int | None
) -> None:
    """The slice as JSON lines in time order, `batch` lines at a time, each batch when it is due."""
    data, ends, ts_ms = engine.encoder.merged_lines(piece, limit)
    if not math.isfinite(clock.pace.speed):
        await sink.write_lines(data.tobytes())
        return
    for lo in range(0, len(ends), batch):
        await clock.wait(int(ts_ms[lo]), sink)
        start = int(ends[lo - 1]) if lo else 0
        await sink.write_lines(data[start : int(ends[min(lo + batch, len(ends)) - 1])].tobytes())


async def _send_at_rate(
    engine: Engine, piece: Slice, sink: RecordSink, pace: Pace, clock: _Clock, batch: int, report: RunReport
) -> bool:
    """Load test: the slice's events at the target rate, stamped with their send time; False when
    the run's wall-clock duration is over."""
    for kind, lo in _time_ordered_batches(piece, batch):
        cols = piece.cols[kind]
        due = clock.t0 + pace.due_s(report.events)
        if pace.duration_s is not None and due - clock.t0 >= pace.duration_s:
            return False
        if due > time.monotonic() + 0.005:
            await sink.flush()
            await asyncio.sleep(due - time.monotonic())
        part = {k: v[lo : lo + batch].copy() for k, v in cols.items()}
        part["ts_ms"][:] = int(time.time() * 1000)  # the simulation gives content, not time
        if sink.lines:
            await sink.write_lines(engine.encoder.lines(kind, part))
        else:
            await sink.send_records(kind, engine.encoder.arrays(kind, part, batch))
        report.events += len(part["ts_ms"])
        report.by_kind[kind] = report.by_kind.get(kind, 0) + len(part["ts_ms"])
    return True
