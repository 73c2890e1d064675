"""Bench data: replicated persons stay distinct, and the load is shaped as the ingest edge writes it."""

from __future__ import annotations

from cityscreen.city import load_city
from cityscreen.clean_batch import decode_batch
from cityscreen.events import CLEAN_TOPICS, RawPayment, RawSim, RawTransit, partition_for
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
    plan = plan_load(200, 300, 600, morning_start_ms(CITY, NOW_MS))
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
    batches = list(clean_batches(raw_events(base, plan), settings, CITY, stats, 60_000))
    assert stats.events == 3000 and stats.dead == 0
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
