"""Bench data: generator events scaled to a megacity, turned into clean records the way ingest writes them.

A base population is simulated by the columnar generator (`services.generator.columnar`) over a
short span, and each of its persons can be replicated with distinct identifiers (`#<r>` appended to
IMSI, account, card and event id): same towers and habits, distinct people after pseudonymisation.
The generator builds millions of persons in seconds, so replicas are only needed when the load asks
for more events than the base population makes in the span. The clean records are
built by the ingest edge's own pure code (`cityscreen.ingest.Validator`), partitioned by person with
`partition_for`, 1000 events per record as `streams/ingest.py` writes them.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from cityscreen.city import City
from cityscreen.clean_batch import encode_batch
from cityscreen.events import (
    CLEAN_TOPICS,
    INGEST_SIM_TOPIC,
    CleanEvent,
    RawEvent,
    RawPayment,
    RawSim,
    encode,
    encode_many,
)
from cityscreen.ingest import TS_SKEW, IngestResult, Validator, config_from_settings
from cityscreen.settings import Settings
from services.generator.columnar.engine import Engine

RECORD_EVENTS = 1000  # clean events per record, as cityscreen.ingest_batch.RECORD_EVENTS
CHUNK_EVENTS = 20_000  # raw events validated per ingest batch


@dataclass
class LoadPlan:
    events: int
    base_persons: int
    replicas: int
    span_s: int
    start_ms: int


def morning_start_ms(city: City, now_ms: int, hour: int = 8) -> int:
    """The most recent `hour`:00 local time of the city before now (inside the ingest skew window)."""
    tz = timedelta(hours=city.utc_offset_h)
    local = datetime.fromtimestamp(now_ms / 1000, UTC) + tz
    start = local.replace(hour=hour, minute=0, second=0, microsecond=0)
    if start + timedelta(hours=1) > local:
        start -= timedelta(days=1)
    return int((start - tz).replace(tzinfo=UTC).timestamp() * 1000)


def plan_load(events: int, base_persons: int, span_s: int, start_ms: int) -> LoadPlan:
    """The load before the base population is simulated (replicas are set by `base_events`)."""
    return LoadPlan(events, base_persons, 1, span_s, start_ms)


def replicas_for(events: int, base_events: int) -> int:
    """How many replicas of the base population's events make at least `events` events."""
    return max(1, math.ceil(events / max(1, base_events)))


def replicate(event: RawEvent, r: int) -> RawEvent:
    """The same event of the r-th replica of its person (r = 0 is the original)."""
    if r == 0:
        return event
    suffix = f"#{r}"
    # ":" not "#" in the event id: the ingest edge accepts letters, digits and ._:- only there
    ids: dict[str, str] = {"event_id": f"{event.event_id}:{r}"}
    if isinstance(event, RawSim):
        ids.update(imsi=event.imsi + suffix, msisdn=event.msisdn + suffix)
    elif isinstance(event, RawPayment):
        ids["account"] = event.account + suffix
    else:
        ids["card"] = event.card + suffix
    return msgspec.structs.replace(event, **ids)


def base_events(city: City, plan: LoadPlan, seed: int) -> list[RawEvent]:
    """The simulated base population's events over the span, in event-time order."""
    return list(Engine(city, plan.base_persons, seed).events(plan.start_ms, plan.span_s))


def raw_events(base: list[RawEvent], plan: LoadPlan) -> Iterator[RawEvent]:
    """Exactly `plan.events` raw events (fewer if the replicas run out), in event-time order; the
    replicas of one event are adjacent."""
    n = 0
    for event in base:
        for r in range(plan.replicas):
            yield replicate(event, r)
            n += 1
            if n >= plan.events:
                return


@dataclass
class CleanBatch:
    """One ingest batch: clean records per (topic, partition), and the events in order for the peer."""

    records: list[tuple[str, int, bytes]]
    events: list[CleanEvent]


# Rejections that say nothing about the generator: the bench chose event times too far from its own
# clock. Every other reason means the generator made an event the ingest edge should never see.
NOT_GENERATOR_FAULTS = frozenset({TS_SKEW})


@dataclass
class LoadStats:
    events: int = 0
    records: int = 0
    rejected: Counter[str] = field(default_factory=Counter)  # dead letters per reason
    windows: set[int] = field(default_factory=set)
    first_ts_ms: int | None = None
    last_ts_ms: int | None = None

    @property
    def dead(self) -> int:
        return sum(self.rejected.values())

    def generator_faults(self) -> dict[str, int]:
        """The rejections, per reason, that only a generator bug explains."""
        return {r: n for r, n in sorted(self.rejected.items()) if r not in NOT_GENERATOR_FAULTS}


def clean_batches(
    raws: Iterator[RawEvent],
    settings: Settings,
    city: City,
    stats: LoadStats,
    window_ms: int,
    *,
    now_ms: int,
) -> Iterator[CleanBatch]:
    """Raw events through the ingest edge's validator, CHUNK_EVENTS at a time, as clean records.
    `now_ms` is the clock the validator's skew rule compares event times with (a parameter, so the
    same load validates the same way on any date)."""
    validator = Validator(config_from_settings(settings, city.bbox, city))
    chunk: list[RawEvent] = []

    def flush() -> CleanBatch:
        result = IngestResult()
        for i in range(0, len(chunk), settings.generator.batch_events):  # records as the generator sends them
            validator.process(
                result,
                encode_many(chunk[i : i + settings.generator.batch_events]),
                topic=INGEST_SIM_TOPIC,
                partition=0,
                offset=i,
                now_ms=now_ms,
            )
        stats.rejected.update(dead.reason for dead in result.dead)
        records = []
        ordered: list[CleanEvent] = []
        for (kind, partition), events in result.clean.items():
            ordered.extend(events)
            for i in range(0, len(events), RECORD_EVENTS):
                value = encode_batch(kind, events[i : i + RECORD_EVENTS], settings.window.h3_res)
                records.append((CLEAN_TOPICS[kind], partition, value))
        ordered.sort(key=lambda e: e.ts_ms)
        for e in ordered:
            stats.windows.add(e.ts_ms - e.ts_ms % window_ms)
        if ordered:
            stats.first_ts_ms = stats.first_ts_ms if stats.first_ts_ms is not None else ordered[0].ts_ms
            stats.last_ts_ms = ordered[-1].ts_ms
        stats.events += len(ordered)
        stats.records += len(records)
        chunk.clear()
        return CleanBatch(records, ordered)

    for raw in raws:
        chunk.append(raw)
        if len(chunk) >= CHUNK_EVENTS:
            yield flush()
    if chunk:
        yield flush()


def bench_producer(bootstrap: str, *, linger_ms: int, request_timeout_ms: int) -> Any:
    """The loading producer of the benchmarks: large batches, leader acks only (loading is not timed)."""
    from aiokafka import AIOKafkaProducer

    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        linger_ms=linger_ms,
        max_batch_size=1_048_576,
        max_request_size=8 * 1024 * 1024,
        acks=1,
        request_timeout_ms=request_timeout_ms,
    )


async def load_kafka(
    bootstrap: str,
    batches: Iterator[CleanBatch],
    *,
    single_topic: str,
    single_events: int,
    progress: Callable[[int], None],
) -> int:
    """Send the clean records, and the first `single_events` events one JSON event per record to
    `single_topic` (the external format, for the textbook peer). Returns the single events sent."""
    producer = bench_producer(bootstrap, linger_ms=20, request_timeout_ms=60_000)
    await producer.start()
    singles = 0
    try:
        pending = []
        for batch in batches:
            for topic, partition, value in batch.records:
                pending.append(await producer.send(topic, value, partition=partition))
            for event in batch.events:
                if singles >= single_events:
                    break
                pending.append(await producer.send(single_topic, encode(event)))
                singles += 1
            if len(pending) > 5000:
                for f in pending:
                    await f
                pending = []
            progress(len(batch.events))
        for f in pending:
            await f
    finally:
        await producer.stop()
    return singles
