"""How many records the ingest loop takes per poll (streams.ingest_loop.TakeSize)."""

from __future__ import annotations

from streams.ingest_loop import TakeSize


def test_a_batch_of_one_event_records_holds_as_many_events_as_one_of_arrays() -> None:
    take = TakeSize(20_000, events_per_record=500)
    assert take.records == 40  # sized for the generator's arrays until a batch says otherwise
    take.observe(40, 40)  # external producers: one event per record
    assert take.records == 20_000
    take.observe(20_000, 20_000)
    assert take.records == 20_000


def test_the_take_shrinks_again_when_records_hold_arrays() -> None:
    take = TakeSize(20_000, events_per_record=500)
    take.observe(40, 40)
    take.observe(20_000, 20_000 * 250)  # the feed turned to arrays of 250 events
    assert take.records == 80
    take.observe(80, 80 * 100_000)  # more events per record than the whole budget
    assert take.records == 1


def test_records_without_events_count_as_one_event_each() -> None:
    take = TakeSize(1_000, events_per_record=10)
    take.observe(50, 0)  # e.g. tombstones, each dead-lettered or skipped
    assert take.records == 1_000
    take.observe(0, 0)
    assert take.records == 1_000
