"""The columnar send loop: records and lines hold exactly the engine's events, counted per kind."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest

from cityscreen.city import load_city
from cityscreen.events import RawSim, decode_raw_many
from services.generator import feed
from services.generator.columnar.engine import Engine
from services.generator.feed import NullSink, pump_engine
from services.generator.fixtures import read_events
from services.generator.run import Pace, RunReport
from services.generator.sinks import FileSink

CITY = load_city()
START = int(datetime.fromisoformat("2026-11-17T07:50:00+08:00").timestamp() * 1000)
WEEK_MS = 7 * 86_400_000


def past_start_ms(now_ms: int) -> int:
    """START moved by whole weeks to at least an hour before `now_ms`: a span already due on the wall
    clock, with START's weekday and time of day whatever the day and hour the test runs (the generator's
    events depend on both: an hour ago at 00:45 in Shenzhen, the relative run below never slept)."""
    return START + (now_ms - 3_600_000 - START) // WEEK_MS * WEEK_MS


class CaptureSink(NullSink):
    def __init__(self) -> None:
        super().__init__()
        self.by_kind: dict[str, list[bytes]] = {}

    async def send_records(self, kind: str, records: list[bytes]) -> None:
        await super().send_records(kind, records)
        self.by_kind.setdefault(kind, []).extend(records)


def test_records_hold_the_engines_events_in_batches() -> None:
    sink = CaptureSink()
    report = asyncio.run(pump_engine(Engine(CITY, 2000, 5), START, 1200, sink, Pace(), batch_events=50))
    expected = list(Engine(CITY, 2000, 5).events(START, 1200))
    sent = {k: [e for r in records for e in decode_raw_many(r)] for k, records in sink.by_kind.items()}
    assert all(len(decode_raw_many(r)) <= 50 for records in sink.by_kind.values() for r in records)
    for kind, events in sent.items():
        assert events == [e for e in expected if str(e.__struct_config__.tag) == kind]
    assert report.events == len(expected) == sum(report.by_kind.values())
    assert report.by_kind == dict(Counter(str(e.__struct_config__.tag) for e in expected))


def test_slices_computed_ahead_in_a_thread_send_the_engines_events_across_midnight() -> None:
    """Four slices (an hour each at this population), the next always computed while one is sent,
    and a new day's plans among them: the records hold the same events as the engine in line."""
    start = START + 14 * 3_600_000 + 40 * 60_000  # 22:30 in Shenzhen
    sink = CaptureSink()
    engine = Engine(CITY, 2000, 5)
    assert engine.slice_ms() == 3_600_000
    asyncio.run(pump_engine(engine, start, 3 * 3600, sink, Pace(), batch_events=500))
    expected = list(Engine(CITY, 2000, 5).events(start, 3 * 3600))
    for kind, records in sink.by_kind.items():
        sent = [e for r in records for e in decode_raw_many(r)]
        assert sent == [e for e in expected if str(e.__struct_config__.tag) == kind]
    assert sum(len(decode_raw_many(r)) for rs in sink.by_kind.values() for r in rs) == len(expected) > 1000


def test_lines_are_the_events_in_time_order_and_stop_at_max_events(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl.gz"
    report = asyncio.run(
        pump_engine(Engine(CITY, 2000, 5), START, 1200, FileSink(path), Pace(), max_events=700)
    )
    expected = list(Engine(CITY, 2000, 5).events(START, 1200))[:700]
    assert report.events == 700 and list(read_events(path)) == expected


def test_real_time_on_the_wall_clock_sends_a_past_backlog_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """`--realtime --start <past>`: events already due on the wall clock go out without waiting; a span
    at relative speed 1 waits between records (the sleeps are counted, never timed)."""

    sleeps: list[float] = []
    real_sleep = asyncio.sleep

    async def counting_sleep(delay: float) -> None:
        sleeps.append(delay)
        await real_sleep(0)

    monkeypatch.setattr(asyncio, "sleep", counting_sleep)  # the module feed sleeps with
    past = past_start_ms(int(time.time() * 1000))  # every event is already due
    anchored = asyncio.run(
        pump_engine(Engine(CITY, 500, 5), past, 600, NullSink(), Pace(speed=1.0, anchored=True))
    )
    assert anchored.events > 0 and sleeps == []
    # relative pacing spreads the span over ten wall minutes; START, not the wall clock: the same records
    asyncio.run(pump_engine(Engine(CITY, 500, 5), START, 600, NullSink(), Pace(speed=1.0), max_events=200))
    assert sleeps


@pytest.mark.parametrize(
    ("pace", "restarts"),
    [
        (Pace(rate_eps=20_000, duration_s=60), True),
        (Pace(speed=1.0), True),
        (Pace(speed=1.0, anchored=True), False),  # due on the wall clock, whatever the setup took
        (Pace(), False),  # as fast as possible: the setup is part of the run's time
    ],
)
def test_a_paced_run_starts_its_schedule_when_the_first_slice_is_ready(
    monkeypatch: pytest.MonkeyPatch, pace: Pace, restarts: bool
) -> None:
    """A first slice that took 40 s (a day's plans) must not leave a rate run 40 s behind schedule,
    which it would send as one burst."""
    clock_s = [100.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock_s[0])  # the module feed reads
    clock = feed._Clock(pace, RunReport(), warn=lambda m: None)
    clock_s[0] += 40.0  # the first slice is computed
    clock.ready()
    assert clock.t0 == (140.0 if restarts else 100.0)


@pytest.mark.parametrize(
    "now", ["2026-11-17T08:51:00+08:00", "2026-11-23T00:45:00+08:00", "2031-02-01T12:00:00Z"]
)
def test_the_past_start_is_an_hour_or_more_ago_on_starts_weekday_and_time(now: str) -> None:
    now_ms = int(datetime.fromisoformat(now).timestamp() * 1000)
    past = past_start_ms(now_ms)
    assert now_ms - 3_600_000 - WEEK_MS < past <= now_ms - 3_600_000 and (past - START) % WEEK_MS == 0


def test_a_warm_start_reports_every_person_once_in_its_first_window() -> None:
    window_ms = 60_000
    cold = list(Engine(CITY, 3000, 5).events(START, 60))
    warm_engine = Engine(CITY, 3000, 5)
    warm_engine.warm_ms = window_ms
    warm = list(warm_engine.events(START, 60))
    sims = [e for e in warm if isinstance(e, RawSim)]
    assert len({e.imsi for e in sims}) == 3000 > len({e.imsi for e in cold if isinstance(e, RawSim)})
    assert all(START <= e.ts_ms < START + window_ms and CITY.bbox.contains(e.lat, e.lng) for e in warm)
    assert {e.event_id for e in cold} <= {e.event_id for e in warm}  # warm only adds updates
    assert len({e.event_id for e in warm}) == len(warm)  # and their ids are new
    # only the run's first window is warm: after it, the same events as a cold run
    warm_engine.warm_ms = window_ms
    two = [e for e in Engine(CITY, 3000, 5).events(START, 120) if e.ts_ms >= START + window_ms]
    warm_two = warm_engine.events(START, 120)
    assert [e for e in warm_two if e.ts_ms >= START + window_ms] == two


class KindSink(NullSink):
    def __init__(self) -> None:
        super().__init__()
        self.kinds: list[str] = []

    async def send_records(self, kind: str, records: list[bytes]) -> None:
        await super().send_records(kind, records)
        self.kinds += [kind] * len(records)


def test_at_a_rate_the_kinds_go_out_interleaved_as_their_events_are() -> None:
    """A load test sends each slice's batches in the order of their first events, not one kind's whole
    slice after another's (which left the SIM topic silent for seconds at the peak)."""
    sink = KindSink()
    pace = Pace(rate_eps=1e12)  # due at once: no sleep, nothing timed
    asyncio.run(pump_engine(Engine(CITY, 2000, 5), START, 1200, sink, pace, batch_events=50))
    expected: list[str] = []
    pieces = list(Engine(CITY, 2000, 5).slices(START, 1200))
    for piece in pieces:
        firsts = [
            (int(cols["ts_ms"][lo]), kind)
            for kind, cols in piece.cols.items()
            if cols
            for lo in range(0, len(cols["ts_ms"]), 50)
        ]
        expected += [kind for _, kind in sorted(firsts, key=lambda first: first[0])]
    assert sink.kinds == expected
    switches = sum(a != b for a, b in zip(sink.kinds, sink.kinds[1:], strict=False))
    # kind after kind, a slice switches kinds twice (and once more at its end)
    assert len(set(expected)) == 3 and switches > 3 * len(pieces)
