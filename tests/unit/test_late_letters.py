"""Late events leave the aggregate worker as counts and person-free dead letters (aggregate/late.py)."""

from __future__ import annotations

from typing import Any

import msgspec

from cityscreen.aggregate.close import AggConfig
from cityscreen.aggregate.engine import DictLog, Engine
from cityscreen.aggregate.late import LETTER_IDS, LateCounts, late_letters, window_of
from cityscreen.events import PAYMENT_TOPIC, SIM_TOPIC, SimEvent
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
    letters = [msgspec.json.decode(b) for b in late_letters(rows, 60)]
    assert letters == [
        {"reason": "late", "source_topic": SIM_TOPIC, "kind": "sim", "window_start_ms": T0, "events": 2,
         "event_ids": ["ev7", "ev8"]},
    ]  # fmt: skip
    text = msgspec.json.encode(letters).decode()
    for row in rows:
        for name in ("person", "cell", "gender", "age_band", "origin", "ts_ms"):
            if name in row:
                assert str(row[name]) not in text, name


def test_late_letters_group_a_batch_by_window_and_every_late_event_is_in_exactly_one() -> None:
    # one letter per event made a burst of late events cost a Kafka send each (the worker never caught up)
    base = late_rows()[0]
    rows = [
        {**base, "event_id": f"e{i}", "ts_ms": T0 + (i % 3) * 60_000 + i % 50}
        for i in range(3 * LETTER_IDS + 7)
    ]
    letters = [msgspec.json.decode(b) for b in late_letters(rows, 60)]
    assert len(letters) == 6  # three windows of 1,002 or 1,003 ids, each split at LETTER_IDS
    ids = [i for letter in letters for i in letter["event_ids"]]
    assert sorted(ids) == sorted(r["event_id"] for r in rows)
    assert sum(letter["events"] for letter in letters) == len(rows)
    assert {letter["window_start_ms"] for letter in letters} == {T0, T0 + 60_000, T0 + 120_000}
    assert max(len(letter["event_ids"]) for letter in letters) <= LETTER_IDS


def test_late_events_are_counted_per_window_and_cell_within_a_bound() -> None:
    rows = late_rows()
    counts = LateCounts(window_s=60, max_windows=2)
    counts.add(rows)
    assert counts.summary(T0) == (2, 1)  # both in one cell
    counts.add([{**rows[0], "ts_ms": T0 + k * 60_000} for k in (1, 2, 3)])
    assert sorted({w for w, _ in counts.counts}) == [T0 + 120_000, T0 + 180_000]
    assert window_of(T0 + 59_999, 60) == T0


def test_each_late_letter_names_the_clean_topic_of_its_kind() -> None:
    # one call covers a batch of every kind: the topic follows from the row's kind, not from the caller
    base = late_rows()[0]
    rows = [{**base, "kind": "sim", "event_id": "s1"}, {**base, "kind": "payment", "event_id": "p1"}]
    letters = [msgspec.json.decode(b) for b in late_letters(rows, 60)]
    assert [(x["kind"], x["source_topic"], x["event_ids"]) for x in letters] == [
        ("payment", PAYMENT_TOPIC, ["p1"]),
        ("sim", SIM_TOPIC, ["s1"]),
    ]
