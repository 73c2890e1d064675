"""The ingest edge agent: raw `city.ingest.*` records in, clean person-keyed records and dead letters out.

The agent is a thin shell: `cityscreen.ingest_batch.BatchValidator` does the validation, pseudonymization
and binning of a whole batch of records at once (with `cityscreen.ingest.Validator`, event by event, as its
reference and fallback); this module only moves bytes between Kafka, the validator and the Redis counters.

A batch is `window.max_batch_events // generator.batch_events` records: `generator.batch_events` is what
the edge expects producers to put in a record (500, the generator's arrays; set it to 1 for producers
that send one event per record, so that a batch still holds about `max_batch_events` events).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import faust

from cityscreen.city import load_city
from cityscreen.deadletter import encode_dead
from cityscreen.events import CLEAN_TOPICS, DEADLETTER_TOPIC, INGEST_TOPICS
from cityscreen.ingest import config_from_settings, require_secret
from cityscreen.ingest_batch import BatchResult, BatchValidator
from cityscreen.settings import Settings
from cityscreen.store_keys import STATS_KEY

PUBLISH_RETRY_S = (0.5, 1.0, 2.0, 5.0)  # waits between publish attempts, the last one repeated
Publish = Callable[[BatchResult], Awaitable[None]]
CountStats = Callable[[Counter[str]], Awaitable[None]]


def build_ingest(
    app: faust.App,
    settings: Settings,
    *,
    publish: Publish | None = None,
    count: CountStats | None = None,
) -> Any:
    """Declare the ingest agent on `app`; `publish` and `count` default to Kafka topics and nothing."""
    city = load_city(settings.generator.city_file)  # its bbox and its names are the edge's vocabulary
    validator = BatchValidator(config_from_settings(settings, city.bbox, city))
    raw = app.topic(*INGEST_TOPICS.values(), value_serializer="raw", key_serializer="raw")
    publish = publish or kafka_publisher(app, settings)
    records_per_take = max(1, settings.window.max_batch_events // settings.generator.batch_events)

    @app.agent(raw, name="cityscreen.ingest")
    async def ingest(stream: Any) -> None:  # a faust Stream: take_events is not on StreamT
        # take_events acks (and so lets Faust commit) a batch's offsets when the next batch is asked
        # for, and also when this body raises: nothing may raise here before every record of the batch
        # is delivered to a clean topic or the dead-letter topic, or the batch is silently lost
        async for events in stream.take_events(records_per_take, within=settings.window.flush_s):
            now_ms = int(time.time() * 1000)
            records = [(m.value, m.topic, m.partition, m.offset) for m in (e.message for e in events)]
            result = validator.run(records, now_ms)  # never raises for a record's content
            await publish_until_delivered(publish, result, app.log)
            if count is not None:
                try:
                    await count(result.counts)
                except Exception as exc:  # the counters are best effort; the data is already delivered
                    app.log.warning(f"ingest counters not written to Redis ({exc!r}): is Redis up?")

    return ingest


async def publish_until_delivered(publish: Publish, result: BatchResult, log: Any) -> None:
    """Publish one batch's output, retrying until the broker has it (at-least-once: a retry after a
    partial failure can repeat records). Returns only when everything is delivered."""
    for attempt in itertools.count():
        try:
            await publish(result)
            return
        except asyncio.CancelledError:
            raise  # the worker is stopping: the batch is not acked, so it is read again after a restart
        except Exception as exc:
            wait_s = PUBLISH_RETRY_S[min(attempt, len(PUBLISH_RETRY_S) - 1)]
            log.error(
                f"ingest batch not delivered ({exc!r}); retrying in {wait_s} s: check that Kafka is up "
                "and accepts records of this size (producer_max_request_size)"
            )
            await asyncio.sleep(wait_s)


def kafka_publisher(app: faust.App, settings: Settings) -> Publish:
    """Clean events as clean batches (cityscreen.clean_batch), one record per person-keyed partition and
    up to RECORD_EVENTS events; dead letters one per record. Returns once the broker acknowledged all."""
    partitions, res = settings.kafka.partitions, settings.window.h3_res
    clean = {
        kind: app.topic(name, value_serializer="raw", key_serializer="raw", partitions=partitions)
        for kind, name in CLEAN_TOPICS.items()
    }
    dead = app.topic(DEADLETTER_TOPIC, value_serializer="raw", key_serializer="raw", partitions=partitions)

    # force=True: inside an agent Faust would otherwise attach each send to the current event and
    # publish it at that event's ack, after this batch's offsets are already acked
    async def publish(result: BatchResult) -> None:
        delivered = []
        for kind, partition, value in result.records(res):  # up to RECORD_EVENTS events each
            delivered.append(await clean[kind].send(value=value, partition=partition, force=True))
        for letter in result.dead:  # the dead letters are part of the batch's delivery too
            delivered.append(await dead.send(value=encode_dead(letter), force=True))
        for fut in delivered:  # every send is queued before any is awaited: one round trip, not many
            await fut

    return publish


def redis_counter(url: str) -> CountStats:
    """One pipelined HINCRBY per counter per batch into the shared stats hash."""
    import redis.asyncio as aioredis

    client = aioredis.from_url(url)

    async def count(counts: Counter[str]) -> None:
        if counts:
            async with client.pipeline(transaction=False) as pipe:
                for key, n in counts.items():
                    pipe.hincrby(STATS_KEY, key, n)
                await pipe.execute()

    return count


def run_ingest_worker(settings: Settings, app_id: str = "cityscreen-ingest") -> None:
    """Run the ingest edge until stopped. Refuses a placeholder pseudonym secret outside development. The
    worker runs the consumer loop of streams.ingest_loop, not this module's Faust agent: Faust's stream
    costs more per record than the validation itself when producers send one event per record."""
    from streams.ingest_loop import run_ingest_loop

    require_secret(settings)
    run_ingest_loop(settings, app_id, redis_counter(settings.redis.url))
