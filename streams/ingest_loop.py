"""The ingest worker's loop: a plain Kafka consumer group in front of `BatchValidator`, no Faust stream.

External producers send one event per record. Faust turns every record into a message, an event and a
trip through its stream's channel and processors before `take_events` hands it over: on the loaded
two-core bench machine the Faust agent (`streams.ingest.build_ingest`) ingested about 2,000 one-event
records a second, while the batch validator behind it does tens of thousands per second. Here the
consumer is librdkafka's (confluent-kafka): its threads fetch and parse records in C while this one
validates, and `consume` hands over up to a batch of records in one call. aiokafka's `getmany` built a
Python record object per record: with it the loop took 110,000 to 116,000 one-event records a second,
a prototype of this loop on librdkafka 159,000 to 171,000 (same box, same 3,000,000 records, runs in
turn; the final loop's runs are in docs/capacity.md). The batch is
validated at once, published (aiokafka's idempotent producer: a batch is a few dozen clean records), and
only then are its offsets committed: at least once, as the agent (a retry or a rebalance after a partial
failure can repeat records, never lose one).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from typing import Any

from adapters.kafka_topics import ensure_topics, project_specs
from cityscreen.city import load_city
from cityscreen.deadletter import encode_dead
from cityscreen.events import CLEAN_TOPICS, DEADLETTER_TOPIC, INGEST_TOPICS
from cityscreen.gcpause import gc_paused
from cityscreen.ingest import config_from_settings
from cityscreen.ingest_batch import BatchResult, BatchValidator
from cityscreen.settings import Settings
from streams.app import FETCH_BYTES
from streams.ingest import CountStats, Publish, publish_until_delivered
from streams.internal_topics import MAX_RECORD_BYTES
from streams.loop_phases import Phases
from streams.until_stopped import run_until_stopped

log = logging.getLogger("cityscreen.ingest")
Raw = tuple[bytes | None, str, int, int]  # a raw record: value, topic, partition, offset
PREFETCH_RECORDS = 200_000  # records librdkafka keeps fetched ahead per partition while a batch is validated
PREFETCH_KBYTES = 256 * 1024  # and at most this many kilobytes of them in all


class TakeSize:
    """How many records to take per poll so that a batch holds about `events` events, learnt from the
    last batch's events per record. The generator sends arrays of hundreds of events per record, external
    producers one event per record: sized for the generator, a batch of one-event records held 40 events,
    and the loop's fixed cost per batch (publish, commit) held the edge at about 5,000 events/s. A feed
    that turns from single events to arrays overshoots once, by at most what the consumer has fetched."""

    def __init__(self, events: int, events_per_record: int) -> None:
        self.events = events
        self.records = max(1, events // max(1, events_per_record))

    def observe(self, records: int, events: int) -> None:
        per_record = max(1.0, events / max(1, records))
        self.records = max(1, min(self.events, int(self.events / per_record)))


def producer_publisher(producer: Any, res: int) -> Publish:
    """Clean batches to their person-keyed partitions and dead letters, every send queued before any is
    awaited; returns once the broker has acknowledged them all."""

    async def publish(result: BatchResult) -> None:
        delivered = [
            await producer.send(CLEAN_TOPICS[kind], value, partition=partition)
            for kind, partition, value in result.records(res)
        ]
        for letter in result.dead:
            delivered.append(await producer.send(DEADLETTER_TOPIC, encode_dead(letter)))
        for fut in delivered:
            await fut

    return publish


def consumer_config(settings: Settings, group: str) -> dict[str, Any]:
    """librdkafka's settings for the raw topics' consumer: offsets committed by the loop, after publishing;
    fetches of up to FETCH_BYTES per partition, and a prefetch queue deep enough that its fetcher threads
    keep reading while this thread validates."""
    session_s = settings.kafka.session_timeout_s
    return {
        "bootstrap.servers": settings.kafka.bootstrap,
        "group.id": group,
        "enable.auto.commit": False,
        "enable.auto.offset.store": True,  # what `consume` returns is what the loop's commit commits
        "auto.offset.reset": "earliest",
        "session.timeout.ms": int(session_s * 1000),
        "heartbeat.interval.ms": int(min(3.0, session_s / 3) * 1000),
        "max.partition.fetch.bytes": FETCH_BYTES,
        "fetch.max.bytes": 4 * FETCH_BYTES,
        "queued.min.messages": PREFETCH_RECORDS,
        "queued.max.messages.kbytes": PREFETCH_KBYTES,
        "fetch.wait.max.ms": 50,
        "logger": log,
    }


async def run_loop(settings: Settings, group: str, count: CountStats | None, stop: asyncio.Event) -> None:
    """Consume the raw topics in `group` until `stop` is set."""
    from aiokafka import AIOKafkaProducer
    from confluent_kafka import Consumer, KafkaException

    kafka = settings.kafka
    rf = kafka.replication_factor  # replicated as every project topic (a 3-broker stack: 3 copies, 2 in sync)
    outputs = project_specs((*CLEAN_TOPICS.values(), DEADLETTER_TOPIC), kafka.partitions, rf)
    await ensure_topics(kafka.bootstrap, outputs, replication_factor=rf)
    city = load_city(settings.generator.city_file)
    validator = BatchValidator(config_from_settings(settings, city.bbox, city))
    take = TakeSize(settings.window.max_batch_events, settings.generator.batch_events)
    consumer = Consumer(consumer_config(settings, group))
    consumer.subscribe(list(INGEST_TOPICS.values()))
    # idempotent: a send retried after a broker failure is written once, as the workers' sends are
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka.bootstrap, linger_ms=5, max_batch_size=1_048_576,
        max_request_size=MAX_RECORD_BYTES, acks="all", enable_idempotence=True, request_timeout_ms=60_000,
    )  # fmt: skip
    await producer.start()
    publish = producer_publisher(producer, settings.window.h3_res)
    poll_s = settings.window.flush_s

    async def one_batch() -> None:
        phases = Phases()
        # in a thread: librdkafka waits for records without holding the GIL or the event loop
        taken = await asyncio.to_thread(consumer.consume, take.records, poll_s)
        records = _records(taken)
        if not records:
            return
        phases.mark("poll")
        result = validator.run(records, int(time.time() * 1000))  # never raises for a record's content
        take.observe(len(records), sum(result.counts.values()))
        phases.mark("validate")
        await publish_until_delivered(publish, result, log)
        phases.mark("publish")
        try:
            # the positions `consume` has handed over, i.e. one past this batch's last record of each
            # partition (librdkafka stores them as it returns records): all of them are published now
            consumer.commit(asynchronous=False)
        except KafkaException as exc:  # a rebalance took the partition: its new owner reads it again
            log.warning(f"ingest offsets not committed ({exc!r}): those records will be read again")
        phases.mark("commit")
        await _count(count, result.counts)
        if (slow := phases.slow()) is not None:
            log.warning(f"slow batch of {len(records)} records, clean output held back {slow}")

    try:
        while not stop.is_set():
            # a batch allocates tens of thousands of acyclic objects (the decoded events, their columns):
            # with the collector running, its collections took about a seventh of the loop
            with gc_paused():
                await one_batch()
    finally:
        consumer.close()
        await producer.stop()


def _records(taken: list[Any]) -> list[Raw]:
    """(value, topic, partition, offset) of each record; a consumer error in place of a record (a broker
    gone, a topic missing) is logged and skipped, as librdkafka retries it by itself."""
    records = [(m.value(), m.topic(), m.partition(), m.offset()) for m in taken if m.error() is None]
    if len(records) < len(taken):
        for m in taken:
            if m.error() is not None:
                log.warning(
                    f"ingest consumer: {m.error()} (librdkafka retries; check the broker if it repeats)"
                )
    return records


async def _count(count: CountStats | None, counts: Counter[str]) -> None:
    if count is None:
        return
    try:
        await count(counts)
    except Exception as exc:  # the counters are best effort; the data is already delivered
        log.warning(f"ingest counters not written to Redis ({exc!r}): is Redis up?")


def run_ingest_loop(settings: Settings, group: str, count: CountStats | None) -> None:
    """Run until SIGTERM or SIGINT; the batch in hand is published and committed before the loop ends."""
    run_until_stopped(lambda stop: run_loop(settings, group, count, stop))
