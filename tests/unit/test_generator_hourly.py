"""The hourly report counts every event of raw records (single events and arrays) in its local hour."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import msgspec
import pytest

from cityscreen.events import INGEST_TOPICS
from services.generator.hourly import count_hours, event_times, format_table, local_hour

# 2026-11-17T00:00:00+08:00
MIDNIGHT_MS = 1_794_844_800_000
HOUR_MS = 3_600_000


@pytest.fixture
def make_record() -> Callable[..., bytes]:
    def make(*ts_ms: int, array: bool = True, **fields: Any) -> bytes:
        events = [{"v": 1, "event_id": f"e{t}", "ts_ms": t, **fields} for t in ts_ms]
        return msgspec.json.encode(events if array else events[0])

    return make


@pytest.mark.parametrize(
    ("ts_ms", "offset_h", "hour"),
    [
        (MIDNIGHT_MS, 8.0, "2026-11-17 00"),
        (MIDNIGHT_MS - 1, 8.0, "2026-11-16 23"),
        (MIDNIGHT_MS + 7 * HOUR_MS + 59 * 60_000, 8.0, "2026-11-17 07"),
        (MIDNIGHT_MS, 0.0, "2026-11-16 16"),
    ],
)
def test_local_hour(ts_ms: int, offset_h: float, hour: str) -> None:
    assert local_hour(ts_ms, offset_h) == hour


def test_event_times_of_arrays_single_events_and_garbage(make_record: Callable[..., bytes]) -> None:
    assert event_times(make_record(1, 2, 3)) == [1, 2, 3]
    assert event_times(make_record(5, array=False, imsi="x")) == [5]
    assert event_times(b"not json") == []


def test_count_hours_by_kind_and_table(make_record: Callable[..., bytes]) -> None:
    morning = MIDNIGHT_MS + 8 * HOUR_MS
    records = [
        (INGEST_TOPICS["sim"], make_record(morning, morning + 1, morning + HOUR_MS)),
        (INGEST_TOPICS["payment"], make_record(morning + 5, array=False)),
        (INGEST_TOPICS["transit"], make_record(morning + HOUR_MS + 1, morning + HOUR_MS + 2)),
    ]
    counts = count_hours(records, 8.0)
    assert counts == {
        "2026-11-17 08": Counter(sim=2, payment=1),
        "2026-11-17 09": Counter(sim=1, transit=2),
    }
    table = format_table(counts, markdown=True).splitlines()
    assert table[0] == "| local hour | sim | payment | transit | total |"
    assert table[2] == "| 2026-11-17 08 | 2 | 1 | 0 | 3 |"
    assert table[-1] == "| total | 3 | 1 | 2 | 6 |"
    assert len(format_table(counts).splitlines()) == 4
