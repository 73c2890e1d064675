"""Late events leave the aggregate worker as counts and person-free dead letters (aggregate/late.py)."""

from __future__ import annotations

from typing import Any

import msgspec

from cityscreen.aggregate.close import AggConfig
from cityscreen.aggregate.engine import DictLog, Engine
from cityscreen.aggregate.late import LateCounts, late_letter, window_of
from cityscreen.events import SIM_TOPIC, SimEvent
from cityscreen.settings import Settings
from tests.support.factories import clean_event

T0 = 1_795_000_000_000 - 1_795_000_000_000 % 60_000  # a window start


def sim(n: int, ts_ms: int) -> SimEvent:
    return clean_event("sim", event_id=f"ev{n}", ts_ms=ts_ms, person=f"{n:020x}", lat=22.55, age_band="65+",
                       origin="HK")  # fmt: skip


def late_rows() -> list[dict[str, Any]]:
    """Real late rows from the engine: an event far behind a partition's watermark."""
    engine = Engine(AggConfig.from_settings(Settings()), DictLog(), clock=lambda: 0.0)
    assert engine.apply_events(0, "sim", 0, [sim(1, T0 + 3_600_000)]) == []
    rows = engine.apply_events(0, "sim", 1, [sim(7, T0 + 1234), sim(8, T0 + 5678)])
    assert len(rows) == 2
    return rows


def test_a_late_dead_letter_holds_no_pseudonym_cell_demographics_or_exact_time() -> None:
    rows = late_rows()
    letters = [msgspec.json.decode(late_letter(SIM_TOPIC, row, 60)) for row in rows]
    assert letters[0] == {
        "reason": "late", "source_topic": SIM_TOPIC, "kind": "sim", "event_id": "ev7", "window_start_ms": T0,
    }  # fmt: skip
    text = msgspec.json.encode(letters).decode()
    for row in rows:
        for name in ("person", "cell", "gender", "age_band", "origin", "ts_ms"):
            if name in row:
                assert str(row[name]) not in text, name


def test_late_events_are_counted_per_window_and_cell_within_a_bound() -> None:
    rows = late_rows()
    counts = LateCounts(window_s=60, max_windows=2)
    counts.add(rows)
    assert counts.summary(T0) == (2, 1)  # both in one cell
    counts.add([{**rows[0], "ts_ms": T0 + k * 60_000} for k in (1, 2, 3)])
    assert sorted({w for w, _ in counts.counts}) == [T0 + 120_000, T0 + 180_000]
    assert window_of(T0 + 59_999, 60) == T0
