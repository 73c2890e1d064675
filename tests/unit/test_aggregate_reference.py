"""The real engine (any partitioning, any close cadence) equals the plain reference implementation."""

from __future__ import annotations

import msgspec
import pytest

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
