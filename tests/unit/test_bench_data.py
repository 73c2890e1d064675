"""Bench data: replicated persons stay distinct, and the load is shaped as the ingest edge writes it."""

from __future__ import annotations

from collections import Counter

import msgspec

from cityscreen.city import load_city
from cityscreen.clean_batch import decode_batch
from cityscreen.events import CLEAN_TOPICS, RawPayment, RawSim, RawTransit, partition_for
from cityscreen.ingest import OUT_OF_CITY, TS_SKEW
from cityscreen.settings import Settings
from services.bench.data import (
    RECORD_EVENTS,
    LoadStats,
    base_events,
    clean_batches,
    morning_start_ms,
    plan_load,
    raw_events,
    replicas_for,
    replicate,
)
from services.bench.pipeline import rejected_line

CITY = load_city(None)
NOW_MS = 1_795_300_000_000


def test_morning_start_is_the_last_eight_oclock_local_before_now() -> None:
    start = morning_start_ms(CITY, NOW_MS)
    assert 0 < NOW_MS - start <= 25 * 3_600_000
    local_h = ((start / 3_600_000) + CITY.utc_offset_h) % 24
    assert local_h == 8


def test_replicas_cover_the_requested_events() -> None:
    assert replicas_for(100, 30) == 4
    assert replicas_for(100, 100) == 1
    assert replicas_for(100, 0) == 100


def test_a_replica_is_another_person_with_another_event_id() -> None:
    # a Saturday morning: few rides, so enough persons and time for some taps
    plan = plan_load(200, 2000, 1800, morning_start_ms(CITY, NOW_MS))
    base = base_events(CITY, plan, seed=3)
    kinds = {type(e) for e in base}
    assert kinds == {RawSim, RawPayment, RawTransit}
    for event in base[:50]:
        twin = replicate(event, 2)
        assert twin.event_id != event.event_id and twin.ts_ms == event.ts_ms
        ident = {RawSim: "imsi", RawPayment: "account", RawTransit: "card"}[type(event)]
        assert getattr(twin, ident) != getattr(event, ident)
        assert replicate(event, 0) is event


def test_clean_batches_are_partitioned_by_person_and_count_every_event() -> None:
    settings = Settings()
    plan = plan_load(3000, 300, 600, morning_start_ms(CITY, NOW_MS))
    base = base_events(CITY, plan, seed=3)
    plan.replicas = replicas_for(plan.events, len(base))
    stats = LoadStats()
    batches = list(clean_batches(raw_events(base, plan), settings, CITY, stats, 60_000, now_ms=NOW_MS))
    assert stats.events == 3000 and stats.dead == 0 and not stats.rejected
    kind_of = {topic: kind for kind, topic in CLEAN_TOPICS.items()}
    seen = 0
    for batch in batches:
        for topic, partition, value in batch.records:
            batch_ = decode_batch(value)
            assert 0 < batch_.n <= RECORD_EVENTS and batch_.res == settings.window.h3_res
            assert all(partition_for(p, settings.kafka.partitions) == partition for p in batch_.persons())
            assert batch_.kind == kind_of[topic]
            seen += batch_.n
    assert seen == 3000
    assert len({e.person for b in batches for e in b.events}) > 300  # replicas are distinct persons


def test_rejections_are_counted_per_reason_and_only_generator_faults_fail_the_bench() -> None:
    settings = Settings()
    plan = plan_load(400, 100, 600, morning_start_ms(CITY, NOW_MS))
    base = base_events(CITY, plan, seed=5)
    plan.replicas = replicas_for(plan.events, len(base))
    stale = [msgspec.structs.replace(e, ts_ms=e.ts_ms - 30 * 86_400_000) for e in base[:3]]
    outside = [msgspec.structs.replace(e, lat=CITY.bbox.max_lat + 0.01) for e in base[3:5]]
    stats = LoadStats()
    raws = iter([*stale, *outside, *base[5:]])
    list(clean_batches(raws, settings, CITY, stats, 60_000, now_ms=NOW_MS))
    assert stats.rejected == Counter({TS_SKEW: 3, OUT_OF_CITY: 2})
    assert stats.events == len(base) - 5
    assert stats.generator_faults() == {OUT_OF_CITY: 2}
    assert rejected_line(stats) == "the ingest edge rejected 5 events: out_of_city 2, ts_skew 3"
    assert rejected_line(LoadStats()) == "the ingest edge rejected no event"


def test_a_load_validates_the_same_on_any_date() -> None:
    """The validator's clock is the caller's: the same load, validated 400 days later by the wall
    clock's reckoning, is the same load (the test that broke on 2026-12-05 mixed the two)."""
    plan = plan_load(500, 100, 600, morning_start_ms(CITY, NOW_MS))
    base = base_events(CITY, plan, seed=6)
    plan.replicas = replicas_for(plan.events, len(base))
    runs = []
    for _ in range(2):
        stats = LoadStats()
        batches = list(clean_batches(raw_events(base, plan), Settings(), CITY, stats, 60_000, now_ms=NOW_MS))
        runs.append((stats.events, stats.dead, [r for b in batches for r in b.records]))
    assert runs[0] == runs[1] and runs[0][1] == 0
