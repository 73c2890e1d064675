"""The real engine (any partitioning, any close cadence) equals the plain reference implementation."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from cityscreen.events import RawSim, RawTransit
from cityscreen.settings import Settings
from tests.support.reference_aggregates import reference_window_aggregates
from tests.support.streams_support import (
    ONE_WINDOW,
    START_MS,
    idle_phones,
    make_raw_events,
    persons_total,
    run_engine,
    split_records,
    to_clean,
)

DP = {"dp_enabled": True, "max_contributions_per_window": 1, "max_amount_cny": 100.0}


@pytest.mark.parametrize(
    ("partitions", "per_record", "privacy", "window"),
    [
        (1, 1, {}, {}),
        (4, 7, {}, {}),
        (3, 50, {}, {"window_s": 30, "grace_s": 5}),
        (4, 7, DP, {}),
        (2, 3, {}, {"h3_res": 9, "rollup_res": [8, 6], "flow_res": 7}),
        # layers over windows of three lengths, closing inside the feed; and every layer per minute
        (3, 5, {}, {"payments_window_s": 120, "transit_window_s": 180, "flows_window_s": 240}),
        (3, 5, DP, {"payments_window_s": 120, "transit_window_s": 180, "flows_window_s": 240}),
        (2, 4, {}, ONE_WINDOW),
    ],
)
def test_engine_matches_reference(
    partitions: int, per_record: int, privacy: dict[str, Any], window: dict[str, Any]
) -> None:
    settings = Settings(privacy=privacy, window=window, kafka={"partitions": partitions})
    raw = make_raw_events(persons=80, minutes=4)
    expected = reference_window_aggregates(raw, settings)
    records = split_records([to_clean(r, settings) for r in raw], partitions, per_record)
    got = run_engine(records, settings)
    assert len(expected) >= 4
    assert sum(len(a.flows) for a in expected) > 0
    assert sum(a.late_events for a in expected) >= 3  # the three injected, plus jitter beyond a short grace
    assert msgspec.json.encode(got) == msgspec.json.encode(expected)


@pytest.mark.parametrize(("partitions", "presence_ttl_s"), [(1, 7200), (3, 120), (4, 180)])
def test_engine_matches_reference_when_phones_are_idle(partitions: int, presence_ttl_s: int) -> None:
    """Persons heard only now and then, and a minute with no events at all: people present come from
    last known positions, expire after the TTL, and fill windows that hold no event of a partition (or
    of any partition)."""
    settings = Settings(window={"presence_ttl_s": presence_ttl_s}, kafka={"partitions": partitions})
    raw = idle_phones(make_raw_events(persons=80, minutes=9), every=4, quiet_minutes=range(4, 6))
    expected = reference_window_aggregates(raw, settings)
    got = run_engine(split_records([to_clean(r, settings) for r in raw], partitions, 5), settings)
    assert msgspec.json.encode(got) == msgspec.json.encode(expected)
    present = [persons_total(a) for a in expected]
    active = [persons_total(a, "active.persons") for a in expected]
    assert all(p >= a for p, a in zip(present, active, strict=True))
    assert sum(present) > 1.5 * sum(active)  # the stock counts more than the persons heard
    starts = [(a.window_start_ms - START_MS) // 60_000 for a in expected]
    assert 4 in starts and active[starts.index(4)] == 0  # a window of people present only
    assert (5 in starts) is (presence_ttl_s > 120)  # 5 min: past a 2-minute TTL, nobody is left


def test_dp_bounds_change_the_aggregates() -> None:
    raw = make_raw_events(persons=40, minutes=3)
    plain = reference_window_aggregates(raw, Settings())
    bounded = reference_window_aggregates(raw, Settings(privacy=DP))
    assert msgspec.json.encode(plain) != msgspec.json.encode(bounded)


def test_ties_on_time_follow_arrival_order() -> None:
    """A person's events at the same millisecond count in the order they arrived: the later arrival is
    the last SIM cell (and the later tap-in is the open trip), whatever their event ids."""
    raw = make_raw_events(persons=60, minutes=3, late=0)
    tied = []
    for i, ev in enumerate(raw):
        tied.append(ev)
        if i % 7 == 0 and isinstance(ev, (RawSim, RawTransit)):
            # same person and time, another place, an event id that sorts first
            tied.append(msgspec.structs.replace(ev, event_id="0" + ev.event_id, lat=ev.lat + 0.02))
    settings = Settings(kafka={"partitions": 2})
    expected = reference_window_aggregates(tied, settings)
    got = run_engine(split_records([to_clean(r, settings) for r in tied], 2, 5), settings)
    assert len(tied) - len(raw) > 20
    assert msgspec.json.encode(got) == msgspec.json.encode(expected)
    assert msgspec.json.encode(expected) != msgspec.json.encode(reference_window_aggregates(raw, settings))
