"""The stall watch re-reads partitions a worker stays behind on without applying anything, and only those."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from cityscreen.events import CLEAN_TOPICS
from streams.aggregate_agent import reseek
from streams.stall import OffsetGuard, StallWatch, polled_since
from streams.worker import FaustConsumer

BEHIND = [(2, "sim", 9, 14)]


def test_a_worker_that_moves_is_left_alone() -> None:
    watch = StallWatch(reseek_s=10)
    for t in range(0, 300, 5):
        assert watch.check(float(t), applied_total=t, behind=BEHIND).reseek == []


def test_a_caught_up_worker_is_left_alone() -> None:
    watch = StallWatch(reseek_s=10)
    for t in range(0, 300, 5):
        verdict = watch.check(float(t), applied_total=7, behind=[])
        assert verdict.reseek == [] and verdict.warning is None


def test_behind_and_still_is_reseeked_and_reported_then_not_every_tick() -> None:
    watch = StallWatch(reseek_s=10)
    said = [
        (t, watch.check(float(t), 7, BEHIND, detail=lambda lag: f"{len(lag)} lagging")) for t in range(33)
    ]
    acted = [(t, v) for t, v in said if v.reseek]
    assert [t for t, _ in acted] == [10, 20, 30]
    assert all(v.reseek == BEHIND for _, v in acted)
    assert [t for t, v in said if v.warning] == [10, 20, 30]
    text = acted[0][1].warning
    assert text is not None
    assert "nothing applied for 10 s" in text and "sim[2] at 10 of 14" in text and "1 lagging" in text


def test_progress_restarts_the_clock() -> None:
    watch = StallWatch(reseek_s=10)
    assert watch.check(0.0, 7, BEHIND).reseek == []
    assert watch.check(8.0, 8, BEHIND).reseek == []  # moved
    assert watch.check(17.0, 8, BEHIND).reseek == []  # still only 9 s
    assert watch.check(18.5, 8, BEHIND).reseek == BEHIND


def test_reseek_seeks_assigned_partitions_to_their_first_unapplied_offset() -> None:
    seeks: list[tuple[str, int, int]] = []

    async def seek(topic: str, partition: int, offset: int) -> None:
        seeks.append((topic, partition, offset))

    assigned = [(CLEAN_TOPICS["sim"], 2), (CLEAN_TOPICS["transit"], 0)]
    consumer = SimpleNamespace(assigned=lambda: assigned, seek=seek)
    # transit[3] was revoked meanwhile: its new owner reads it, so it is not sought here
    lagging = [(2, "sim", 9, 14), (0, "transit", -1, 3), (3, "transit", 4, 6)]
    asyncio.run(reseek(consumer, lagging))
    assert sorted(seeks) == sorted([(CLEAN_TOPICS["sim"], 2, 10), (CLEAN_TOPICS["transit"], 0, 0)])


def test_records_in_order_and_redeliveries_are_applied() -> None:
    guard = OffsetGuard()
    assert guard.admit(0, "sim", 0, applied=-1, now=0.0) == ("apply", 0)  # the first record
    assert guard.admit(0, "sim", 5, applied=4, now=0.0) == ("apply", 5)  # restored state: the next one
    assert guard.admit(0, "sim", 6, applied=5, now=0.0) == ("apply", 6)
    assert guard.admit(0, "sim", 3, applied=6, now=0.0) == ("apply", 3)  # a duplicate: the engine skips it


def test_a_hole_is_read_again_and_what_follows_it_waits() -> None:
    guard = OffsetGuard()
    assert guard.admit(1, "sim", 9, applied=6, now=0.0) == ("seek", 7)  # 7 and 8 never came
    assert guard.admit(1, "sim", 10, applied=6, now=0.5) == ("drop", 10)  # still in flight from before
    assert guard.admit(1, "transit", 4, applied=3, now=0.5) == ("apply", 4)  # other partitions unaffected
    assert guard.admit(1, "sim", 7, applied=6, now=1.0) == ("apply", 7)  # re-delivered after the seek
    assert guard.admit(1, "sim", 8, applied=7, now=1.0) == ("apply", 8)
    assert guard.admit(1, "sim", 9, applied=8, now=1.0) == ("apply", 9)


def test_a_first_record_after_zero_is_a_hole_too() -> None:
    assert OffsetGuard().admit(3, "sim", 2, applied=-1, now=0.0) == ("seek", 0)


def test_a_hole_that_stays_is_sought_once_more_then_accepted() -> None:
    """Records deleted by retention before this worker read them: it waits `give_up_s`, then reads on."""
    guard = OffsetGuard(give_up_s=10)
    assert guard.admit(2, "payment", 9, applied=6, now=0.0) == ("seek", 7)
    assert guard.admit(2, "payment", 9, applied=6, now=5.0) == ("drop", 9)
    assert guard.admit(2, "payment", 9, applied=6, now=10.0) == ("seek", 7)
    assert guard.admit(2, "payment", 9, applied=6, now=10.5) == ("hole", 7)
    assert guard.admit(2, "payment", 10, applied=9, now=11.0) == ("apply", 10)


def test_an_end_offset_counts_only_if_the_client_fetched_the_partition_lately() -> None:
    # a starved worker's last known end can equal what it applied while newer records wait on the broker
    assert polled_since(polled_ms=10_000, now_ms=14_000, max_age_s=5.0)
    assert polled_since(polled_ms=10_000, now_ms=15_000, max_age_s=5.0)
    assert not polled_since(polled_ms=10_000, now_ms=15_001, max_age_s=5.0)
    assert not polled_since(polled_ms=None, now_ms=15_000, max_age_s=5.0)  # never fetched


def test_the_faust_consumer_reads_the_clients_poll_times_and_fails_closed() -> None:
    from faust.types import TP

    topic = CLEAN_TOPICS["sim"]
    client = SimpleNamespace(last_poll_timestamp=lambda tp: 1234 if tp == TP(topic, 0) else None)
    app = SimpleNamespace(consumer=SimpleNamespace(_thread=SimpleNamespace(_ensure_consumer=lambda: client)))
    assert FaustConsumer(app).polled_ms(topic, 0) == 1234  # type: ignore[arg-type]
    assert FaustConsumer(app).polled_ms(topic, 1) is None  # type: ignore[arg-type]
    # without the client's poll times no partition counts as fresh: windows then close on event time alone
    assert FaustConsumer(SimpleNamespace(consumer=SimpleNamespace())).polled_ms(topic, 0) is None  # type: ignore[arg-type]
