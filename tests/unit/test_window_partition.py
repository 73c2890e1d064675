"""Event-time windows of one partition: lateness, closing, and rebuilding the state after a crash."""

from __future__ import annotations

from collections.abc import Callable

import msgspec
import pytest

from cityscreen.aggregate.close import AggConfig
from cityscreen.aggregate.engine import DictLog, Engine
from cityscreen.aggregate.partial import Partial, PartialMessage, decode_header, encode_message
from cityscreen.aggregate.partition import PartitionState
from cityscreen.events import CleanEvent, Kind, SimEvent, TransitEvent
from cityscreen.release_book import ReleaseBook
from cityscreen.settings import Settings
from tests.support.factories import clean_event
from tests.support.streams_support import batch_of, make_raw_events, split_records, to_clean

W0 = 1_767_225_600_000
CFG = AggConfig.from_settings(Settings())  # 60 s windows, 30 s grace


@pytest.fixture
def make_sim() -> Callable[..., SimEvent]:
    def make(ts_ms: int, person: str = "ab" * 10, **overrides: object) -> SimEvent:
        return clean_event(
            "sim", event_id=f"e{ts_ms}", ts_ms=ts_ms, person=person, tower_id="T1", **overrides
        )

    return make


def _all_topics_seen(st: PartitionState, ts_ms: int) -> None:
    """Advance the payment and transit watermarks too (windows close on the slowest topic)."""
    where = {"lat": 22.54, "lng": 114.05}
    pay = clean_event("payment", event_id=f"p{ts_ms}", ts_ms=ts_ms, person="cd" * 10, **where)
    tr = clean_event("transit", event_id=f"t{ts_ms}", ts_ms=ts_ms, person="ef" * 10, **where)
    st.add_record("payment", st.applied_offset.get("payment", -1) + 1, batch_of("payment", [pay]))
    st.add_record("transit", st.applied_offset.get("transit", -1) + 1, batch_of("transit", [tr]))


@pytest.mark.parametrize(
    ("late_by_ms", "is_late"),
    [
        (0, False),
        (29_000, False),
        (30_000, True),
        (200_000, True),
    ],  # vs the end of the event's window + grace
)
def test_an_event_is_late_only_past_its_windows_grace(
    make_sim: Callable[..., SimEvent], late_by_ms: int, is_late: bool
) -> None:
    st = PartitionState(0, CFG)
    event_ts = W0 + 10_000
    st.add_record("sim", 0, batch_of("sim", [make_sim(W0 + 60_000 + late_by_ms)]))  # the watermark
    late = st.add_record("sim", 1, batch_of("sim", [make_sim(event_ts)]))
    assert late.tolist() == ([0] if is_late else [])


def test_windows_close_on_the_slowest_topic_and_never_reopen(make_sim: Callable[..., SimEvent]) -> None:
    st = PartitionState(0, CFG)
    st.add_record("sim", 0, batch_of("sim", [make_sim(W0 + 1_000), make_sim(W0 + 95_000)]))
    assert st.close_due() == []  # payment and transit not seen yet
    _all_topics_seen(st, W0 + 95_000)
    closed = st.close_due()
    assert [p.window_start_ms for p in closed] == [W0]
    # an event of the closed window is late even on a topic whose own watermark is behind
    pay = clean_event("payment", event_id="x", ts_ms=W0 + 2_000, person="cd" * 10)
    late = st.add_record("payment", 5, batch_of("payment", [pay]))
    assert len(late) == 1
    assert W0 not in st.windows


def test_records_at_or_below_the_applied_offset_are_skipped(make_sim: Callable[..., SimEvent]) -> None:
    st = PartitionState(0, CFG)
    st.add_record("sim", 7, batch_of("sim", [make_sim(W0 + 1_000)]))
    st.add_record("sim", 7, batch_of("sim", [make_sim(W0 + 2_000, person="cd" * 10)]))
    st.add_record("sim", 3, batch_of("sim", [make_sim(W0 + 3_000, person="ef" * 10)]))
    assert len(st.windows[W0].chunk("sim")) == 1


def _closed_partials(engine: Engine, idle: bool = False) -> list[Partial]:
    out = []
    for c in engine.close_due(idle_s=0.0 if idle else None):
        out.extend(c.partials)
        engine.commit_close(c)
    return out


@pytest.mark.parametrize("crash_after", [1, 6, 12])
def test_a_crash_loses_nothing_and_counts_nothing_twice(crash_after: int) -> None:
    """Kill the engine after `crash_after` batches; a new one restores from the log and gets the replay
    from the last committed batch (plus one already-applied batch, as Kafka may redeliver)."""
    settings = Settings(kafka={"partitions": 2})
    cfg = AggConfig.from_settings(settings)
    raw = make_raw_events(persons=50, minutes=4)
    records = split_records([to_clean(r, settings) for r in raw], 2, 9)
    batches = [records[i : i + 4] for i in range(0, len(records), 4)]

    def run(engine: Engine, todo: list[list[tuple[int, str, int, list[CleanEvent]]]]) -> list[Partial]:
        out = []
        for batch in todo:
            for p, kind, offset, evs in batch:
                engine.apply_events(p, kind, offset, evs)
            engine.persist()
            out.extend(_closed_partials(engine))
        return out

    log = DictLog()
    first = run(Engine(cfg, log, clock=lambda: 0.0), batches[:crash_after])
    restarted = Engine(cfg, log, clock=lambda: 0.0)  # in-memory state gone, log survives
    restarted.load([0, 1])  # the partitions assigned to the new worker
    second = run(restarted, batches[crash_after - 1 :])  # redelivery of the last applied batch
    second += _closed_partials(restarted, idle=True)

    reference = Engine(cfg, DictLog(), clock=lambda: 0.0)
    expected = run(reference, batches) + _closed_partials(reference, idle=True)
    got = first + second
    key = lambda p: (p.window_start_ms, p.partition)  # noqa: E731
    assert len(batches) > crash_after
    assert msgspec.msgpack.encode(sorted(got, key=key)) == msgspec.msgpack.encode(sorted(expected, key=key))


def test_a_quiet_topic_stops_holding_the_watermark_back(make_sim: Callable[..., SimEvent]) -> None:
    """At night a partition may see SIM events for minutes and no transit at all: once a topic kind has
    been quiet for `idle_s` (wall clock), windows close on the other kinds' watermarks."""
    now = [0.0]
    engine = Engine(CFG, DictLog(), clock=lambda: now[0])
    for i in range(6):  # SIM only, one event every 30 s of event time, 5 minutes in all
        engine.apply_events(0, "sim", i, [make_sim(W0 + i * 30_000)])
    engine.persist()
    assert engine.close_due() == []  # payment and transit never seen: they may still hold old events
    now[0] = 4.0
    assert engine.close_due(idle_s=5.0) == []  # not quiet long enough
    now[0] = 6.0
    engine.apply_events(0, "sim", 6, [make_sim(W0 + 180_000)])  # SIM stays active; only the others are quiet
    assert engine.quiet_kinds(0, 5.0) == frozenset({"payment", "transit"})
    closed = engine.close_due(idle_s=5.0)
    # watermark W0 + 180 s, grace 30 s: windows W0 and W0 + 60 s are due, W0 + 120 s is still open
    assert [p.window_start_ms for c in closed for p in c.partials] == [W0, W0 + 60_000]
    assert closed[0].closed_through_ms == W0 + 60_000
    for c in closed:
        engine.commit_close(c)
    late = engine.apply_events(0, "transit", 0, [_transit(W0 + 10_000)])
    assert len(late) == 1  # a quiet topic waking up with an event of a closed window: late, never reopened


def _transit(ts_ms: int) -> TransitEvent:
    return clean_event(
        "transit", event_id=f"t{ts_ms}", ts_ms=ts_ms, person="ef" * 10, station_id="S1", line="1"
    )


def test_a_topic_with_unread_records_is_slow_not_quiet(make_sim: Callable[..., SimEvent]) -> None:
    """A fast replay can deliver minutes of SIM before the first transit record is read: closing on the
    SIM watermark then would make that transit late. Quiet needs nothing left to read, too."""
    now = [0.0]
    engine = Engine(CFG, DictLog(), clock=lambda: now[0])
    for i in range(8):
        engine.apply_events(0, "sim", i, [make_sim(W0 + i * 30_000)])
    engine.persist()
    now[0] = 10.0
    unread = {"payment": 0, "transit": 3}  # end offsets; transit has 3 records not yet applied
    caught_up = lambda p, k: engine.applied_offset(p, k) + 1 >= unread.get(k, 0)  # noqa: E731
    # SIM and payment are quiet (read to the end, nothing new for 10 s); transit is merely unread
    assert engine.quiet_kinds(0, 5.0, caught_up) == frozenset({"sim", "payment"})
    assert engine.close_due(idle_s=5.0, caught_up=caught_up) == []
    engine.apply_events(0, "transit", 2, [_transit(W0 + 20_000)])  # read at last: not late
    assert W0 in engine.states[0].windows and len(engine.states[0].windows[W0].chunk("transit"))
    # now transit's own watermark (W0 + 20 s) holds the partition back: nothing can close yet
    assert [p for c in engine.close_due(idle_s=5.0, caught_up=caught_up) for p in c.partials] == []
    now[0] = 16.0  # all three caught up and transit quiet again; SIM quiet too: everything closes
    assert engine.quiet_kinds(0, 5.0, caught_up) == frozenset({"sim", "payment", "transit"})
    closed = engine.close_due(idle_s=5.0, caught_up=caught_up)
    assert closed and closed[0].partials[0].window_start_ms == W0


def test_a_partition_without_events_does_not_hold_back_the_release(make_sim: Callable[..., SimEvent]) -> None:
    """Partition 1 never receives an event: once it is quiet (and read to its end), it closes through
    what partition 0 has closed, so the release book sees every window complete; an event it receives
    later for such a window is late."""
    now = [0.0]
    engine = Engine(CFG, DictLog(), clock=lambda: now[0])
    engine.load([0, 1])
    kinds: tuple[Kind, ...] = ("sim", "payment", "transit")
    for kind in kinds:
        engine.apply_events(0, kind, 0, [_event(kind, W0 + 1_000), _event(kind, W0 + 100_000)])
    engine.persist()
    assert [(c.partition, c.closed_through_ms) for c in engine.close_due(idle_s=5.0)] == [(0, W0)]
    now[0] = 6.0  # partition 1 quiet since it was taken; partition 0 active again just now
    engine.apply_events(0, "sim", 1, [make_sim(W0 + 101_000)])
    closed = engine.close_due(idle_s=5.0)
    assert [(c.partition, c.closed_through_ms, c.partials) for c in closed] == [(1, W0, [])]
    book = ReleaseBook(2, window_s=60)
    for p in (0, 1):
        book.add(decode_header(encode_message(PartialMessage(p, W0, None))))
    assert book.complete_through() == W0
    late = engine.apply_events(1, "sim", 0, [make_sim(W0 + 2_000, person="cd" * 10)])
    assert len(late) == 1


def _event(kind: Kind, ts_ms: int) -> CleanEvent:
    if kind == "sim":
        return clean_event("sim", event_id=f"s{ts_ms}", ts_ms=ts_ms, tower_id="T")
    if kind == "payment":
        return clean_event("payment", event_id=f"p{ts_ms}", ts_ms=ts_ms)
    return _transit(ts_ms)


def test_an_idle_live_partition_keeps_windows_open_until_their_grace_has_passed(
    make_sim: Callable[..., SimEvent],
) -> None:
    """A feed that pauses upstream (an ingest worker starved of CPU) looks idle; closing the open minute
    then made the rest of its events late. With the worker's clock, idleness closes only what ended, with
    its grace, before now; a replay of past events still closes everything at once."""
    now = [0.0]
    engine = Engine(CFG, DictLog(), clock=lambda: now[0])
    engine.apply_events(0, "sim", 0, [make_sim(W0 + 10_000)])
    engine.apply_events(0, "sim", 1, [make_sim(W0 + 70_000)])  # the open minute W0 + 60 s
    engine.persist()
    now[0] = 10.0  # every kind quiet and read to its end
    wall = W0 + 95_000  # 35 s into the open minute: W0 ended 35 s ago, more than its 30 s grace
    closed = engine.close_due(idle_s=5.0, wall_ms=wall)
    assert [p.window_start_ms for c in closed for p in c.partials] == [W0]
    for c in closed:
        engine.commit_close(c)
    # the pause ends: the open minute's events still count, none is late
    assert engine.apply_events(0, "sim", 2, [make_sim(W0 + 80_000, person="cd" * 10)]) == []
    engine.persist()
    now[0] = 20.0  # quiet again
    assert engine.close_due(idle_s=5.0, wall_ms=W0 + 149_999) == []  # W0 + 60 s ends + grace at 150 s
    closed = engine.close_due(idle_s=5.0, wall_ms=W0 + 150_000)
    assert [p.window_start_ms for c in closed for p in c.partials] == [W0 + 60_000]
    # a replay of old events (wall clock far ahead) closes its last window at once, as before
    replay = Engine(CFG, DictLog(), clock=lambda: now[0])
    replay.apply_events(0, "sim", 0, [make_sim(W0 + 10_000)])
    replay.persist()
    now[0] = 30.0
    closed = replay.close_due(idle_s=5.0, wall_ms=W0 + 10**9)
    assert [c.closed_through_ms for c in closed] == [CFG.close_point_ms(W0)]  # its quarter hour too
    assert W0 in [p.window_start_ms for c in closed for p in c.partials]
