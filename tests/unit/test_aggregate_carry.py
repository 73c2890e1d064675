"""The carry (last known position, open trip per person) is persisted as per-close deltas: a crash at any
write of a close, a partition moving to another worker and the deletion of carry deltas past the carry
TTL all give the flows and the people present of an uninterrupted run."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from cityscreen.aggregate.close import AggConfig
from cityscreen.aggregate.engine import CARRY, MOVES, SNAPSHOT, DictLog, Engine
from cityscreen.aggregate.partial import Partial
from cityscreen.events import CleanEvent, SimEvent
from cityscreen.settings import Settings
from tests.support.streams_support import idle_phones, make_raw_events, split_records, to_clean

Record = tuple[int, str, int, list[CleanEvent]]


class Crash(Exception):
    pass


class CrashingLog(DictLog):
    """Fails the n-th write whose key starts with `prefix` (after which it is a plain log again)."""

    def __init__(self, prefix: str, nth: int) -> None:
        super().__init__()
        self.prefix, self.left = prefix, nth

    def put(self, partition: int, key: str, value: bytes | None) -> None:
        if value is not None and key.startswith(self.prefix):
            self.left -= 1
            if self.left == 0:
                raise Crash(key)
        super().put(partition, key, value)


def _settings(**window: object) -> Settings:
    return Settings(kafka={"partitions": 2}, window=window)


def _batches(settings: Settings, minutes: int, idle_every: int = 1) -> list[list[Record]]:
    """Events in batches of 4 records; every SIM event has a twin 0.5 s later one cell over, so persons
    also move inside a window (a carry applied twice would pair a window's last cell with its first).
    With `idle_every`, only one SIM event in that many is kept: most people present are then known
    from the carry alone."""
    raw = idle_phones(make_raw_events(persons=60, minutes=minutes, late=0), every=idle_every)
    clean = [to_clean(r, settings) for r in raw]
    events: list[CleanEvent] = []
    for e in clean:
        events.append(e)
        if isinstance(e, SimEvent):
            events.append(msgspec.structs.replace(e, event_id=e.event_id + "b", ts_ms=e.ts_ms + 500,
                                                  lat=e.lat + 0.03, lng=e.lng + 0.03))  # fmt: skip
    records = split_records(events, 2, 9)
    return [records[i : i + 4] for i in range(0, len(records), 4)]


def _run(engine: Engine, batches: list[list[Record]], done: list[Partial]) -> None:
    for batch in batches:
        for p, kind, offset, evs in batch:
            engine.apply_events(p, kind, offset, evs)
        engine.persist()
        for c in engine.close_due():
            done.extend(c.partials)
            engine.commit_close(c)


def _finish(engine: Engine, done: list[Partial]) -> list[Partial]:
    while closes := engine.close_due(idle_s=0.0):  # as the worker's idle timer, until all is closed
        for c in closes:
            done.extend(c.partials)
            engine.commit_close(c)
    return done


def _reference(cfg: AggConfig, batches: list[list[Record]]) -> list[Partial]:
    out: list[Partial] = []
    engine = Engine(cfg, DictLog(), clock=lambda: 0.0)
    _run(engine, batches, out)
    return _finish(engine, out)


def _first_copies_list(partials: list[Partial]) -> list[Partial]:
    """First partial per (window, partition), as the release book keeps them."""
    seen: dict[tuple[int, int, int], Partial] = {}
    for p in partials:
        seen.setdefault((p.window_start_ms, p.span_s, p.partition), p)
    return [seen[k] for k in sorted(seen)]


def _first_copies(partials: list[Partial]) -> bytes:
    return msgspec.msgpack.encode(_first_copies_list(partials))


# spans that close inside the feed, of three lengths: rows and movement candidates of open spans are
# restored from the log (the default 15 minutes holds the whole feed: one span, restored mid-way)
SHORT_SPANS = {"payments_window_s": 120, "transit_window_s": 180, "flows_window_s": 180}


@pytest.mark.parametrize("window", [{}, SHORT_SPANS])
@pytest.mark.parametrize(
    ("prefix", "nth"), [(CARRY, 2), (SNAPSHOT, 2), (SNAPSHOT, 5), (CARRY, 7), (MOVES, 3)]
)
def test_a_crash_inside_a_close_gives_the_flows_of_an_uninterrupted_run(
    prefix: str, nth: int, window: dict[str, Any]
) -> None:
    settings = _settings(**window)
    cfg = AggConfig.from_settings(settings)
    batches = _batches(settings, minutes=8)
    got = _crash_and_restart(cfg, batches, prefix, nth)
    expected = _reference(cfg, batches)
    assert any(p.flows for p in expected), "the data must make flows that depend on the carry"
    assert any(p.span_s for p in expected), "the spans must close and be compared"
    assert _first_copies(got) == _first_copies(expected)


def _present_and_active(partials: list[Partial]) -> tuple[int, int]:
    """People present and active persons over the partials' base cells."""
    totals = [0, 0]
    for part in partials:
        for stats in part.cells[8].values():
            for i, key in enumerate(("population.persons", "active.persons")):
                totals[i] += stats.get(key, (0, 0, 0))[0]
    return totals[0], totals[1]


@pytest.mark.parametrize(("prefix", "nth"), [(CARRY, 3), (SNAPSHOT, 4), (CARRY, 6)])
def test_people_present_survive_a_crash_inside_a_close(prefix: str, nth: int) -> None:
    """Persons heard once every few minutes: after the restart, the windows still count them at their
    last known position, restored from the carry deltas."""
    settings = _settings()
    cfg = AggConfig.from_settings(settings)
    batches = _batches(settings, minutes=8, idle_every=5)
    got = _crash_and_restart(cfg, batches, prefix, nth)
    expected = _reference(cfg, batches)
    late = [
        p
        for p in _first_copies_list(expected)
        if p.window_start_ms >= max(q.window_start_ms for q in expected) - 120_000
    ]
    present, active = _present_and_active(late)
    assert present > 2 * active, "the last windows must count persons known only from the carry"
    assert _first_copies(got) == _first_copies(expected)


def test_people_present_move_with_a_partition_to_another_worker() -> None:
    """A rebalance: partition 1 moves to a second engine halfway; it restores the stock from the log."""
    settings = _settings()
    cfg = AggConfig.from_settings(settings)
    batches = _batches(settings, minutes=8, idle_every=5)
    log = DictLog()
    got: list[Partial] = []
    first = Engine(cfg, log, clock=lambda: 0.0)
    half = len(batches) // 2
    _run(first, batches[:half], got)
    first.drop([1])
    second = Engine(cfg, log, clock=lambda: 0.0)
    second.load([1])
    for batch in batches[half:]:
        _run(first, [[r for r in batch if r[0] == 0]], got)
        _run(second, [[r for r in batch if r[0] == 1]], got)
    _finish(first, got)
    _finish(second, got)
    assert _first_copies(got) == _first_copies(_reference(cfg, batches))


def _crash_and_restart(cfg: AggConfig, batches: list[list[Record]], prefix: str, nth: int) -> list[Partial]:
    """Run until the n-th write of `prefix` fails, restart from the log, redeliver, finish."""
    log = CrashingLog(prefix, nth)
    got: list[Partial] = []
    engine = Engine(cfg, log, clock=lambda: 0.0)
    crashed_at = None
    for i, batch in enumerate(batches):
        try:
            _run(engine, [batch], got)
        except Crash:
            crashed_at = i
            break
    assert crashed_at is not None, "the log must crash inside a close"
    restarted = Engine(cfg, log, clock=lambda: 0.0)  # memory gone, the log survives
    restarted.load([0, 1])
    _run(restarted, batches[crashed_at:], got)  # the crashed batch is redelivered: offsets not committed
    return _finish(restarted, got)


def test_carry_deltas_older_than_the_carry_ttl_are_deleted_and_not_needed() -> None:
    settings = _settings(trip_ttl_s=120, presence_ttl_s=180)
    cfg = AggConfig.from_settings(settings)
    batches = _batches(settings, minutes=9)
    log = DictLog()
    got: list[Partial] = []
    engine = Engine(cfg, log, clock=lambda: 0.0)
    half = len(batches) * 3 // 4
    _run(engine, batches[:half], got)
    closed = max(st.closed_through_ms or 0 for st in engine.states.values())
    carry_keys = [int(k[len(CARRY) :]) for part in log.data.values() for k in part if k.startswith(CARRY)]
    # the longer of the two TTLs, an open trip's lengthened by the 15-minute flow window it may pair in
    assert cfg.carry_ttl_ms == max(120_000 + 840_000, 180_000)
    assert carry_keys and min(carry_keys) >= closed - cfg.carry_ttl_ms
    assert len(set(carry_keys)) < closed // cfg.window_ms - min(carry_keys) // cfg.window_ms + 2
    restarted = Engine(cfg, log, clock=lambda: 0.0)
    restarted.load([0, 1])
    _run(restarted, batches[half:], got)
    _finish(restarted, got)
    assert _first_copies(got) == _first_copies(_reference(cfg, batches))
