"""The real engine (any partitioning, any close cadence) equals the plain reference implementation."""

from __future__ import annotations

import msgspec
import pytest

from cityscreen.events import RawSim, RawTransit
from cityscreen.settings import Settings
from tests.reference_aggregates import reference_window_aggregates
from tests.streams_support import make_raw_events, run_engine, split_records, to_clean

DP = {"dp_enabled": True, "max_contributions_per_window": 1, "max_amount_cny": 100.0}


@pytest.mark.parametrize(
    ("partitions", "per_record", "privacy", "window"),
    [
        (1, 1, {}, {}),
        (4, 7, {}, {}),
        (3, 50, {}, {"window_s": 30, "grace_s": 5}),
        (4, 7, DP, {}),
        (2, 3, {}, {"h3_res": 9, "rollup_res": [8, 6], "flow_res": 7}),
    ],
)
def test_engine_matches_reference(partitions: int, per_record: int, privacy: dict, window: dict) -> None:
    settings = Settings(privacy=privacy, window=window, kafka={"partitions": partitions})  # type: ignore[arg-type]
    raw = make_raw_events(persons=80, minutes=4)
    expected = reference_window_aggregates(raw, settings)
    records = split_records([to_clean(r, settings) for r in raw], partitions, per_record)
    got = run_engine(records, settings)
    assert len(expected) >= 4
    assert sum(len(a.flows) for a in expected) > 0
    assert sum(a.late_events for a in expected) >= 3  # the three injected, plus jitter beyond a short grace
    assert msgspec.json.encode(got) == msgspec.json.encode(expected)


def test_dp_bounds_change_the_aggregates() -> None:
    raw = make_raw_events(persons=40, minutes=3)
    plain = reference_window_aggregates(raw, Settings())
    bounded = reference_window_aggregates(raw, Settings(privacy=DP))  # type: ignore[arg-type]
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
    settings = Settings(kafka={"partitions": 2})  # type: ignore[arg-type]
    expected = reference_window_aggregates(tied, settings)
    got = run_engine(split_records([to_clean(r, settings) for r in tied], 2, 5), settings)
    assert len(tied) - len(raw) > 20
    assert msgspec.json.encode(got) == msgspec.json.encode(expected)
    assert msgspec.json.encode(expected) != msgspec.json.encode(reference_window_aggregates(raw, settings))
