"""`cityscreen worker --role now`: the provisional now layer (issue 15) as one consumer loop.

It reads the clean sim topic (every partition; no consumer group), hands each record to the pure
`NowEngine` and stores every tick's frames in Redis (`adapters.frame_store.put_now`), where the gateway
picks them up. Each newer final frame in Redis anchors the layer (`NowEngine.anchor`).

No state is kept across restarts: on start it reads from the first record written at or after the
current period's start (Kafka's record timestamps), which rebuilds the trackers and the running stock,
and the keyed node noise makes the values it publishes again the same ones. One process serves the city
(the running stock sums every partition); a second one would publish the same values.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections import Counter
from typing import Any

import redis.asyncio as aioredis

from adapters.frame_store import frame_at, put_now, recent_windows
from adapters.kafka_topics import ensure_topics, project_specs
from cityscreen.city import load_city
from cityscreen.clean_batch import BatchError, decode_record
from cityscreen.errors import CityScreenError
from cityscreen.events import CLEAN_TOPICS
from cityscreen.frames import encode_now
from cityscreen.now_engine import NowEngine, period_start, released_people
from cityscreen.settings import Settings
from cityscreen.store_keys import STATS_KEY
from streams.app import FETCH_BYTES
from streams.loop_phases import Phases
from streams.until_stopped import run_until_stopped

log = logging.getLogger("cityscreen.now")
STATS_EVERY_S = 5.0
# The trackers hold a few objects per person seen today, millions in a big city, none in a reference
# cycle. Left to the cyclic collector, each full collection walks all of them (seconds, during which no
# tick goes out). So every few seconds: collect what is new, then freeze the survivors out of later
# collections (refcounting still frees them; only a frozen object that later joins a cycle would stay).
# Every 60 s, unfrozen objects piled up enough for the automatic full collections to pause 0.2-0.6 s.
FREEZE_EVERY_S = 5.0

INPUT_GAP_S = 2.0  # no record for this long, then one: the feed paused (ticks waited for it), logged


async def start_consumer(settings: Settings) -> Any:
    """A consumer on every partition of the clean sim topic, at the current period's first record."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    kafka = settings.kafka
    topic = CLEAN_TOPICS["sim"]
    await ensure_topics(kafka.bootstrap, project_specs([topic], kafka.partitions, kafka.replication_factor))
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka.bootstrap, group_id=None, enable_auto_commit=False,
        max_partition_fetch_bytes=FETCH_BYTES,
    )  # fmt: skip
    await consumer.start()
    parts = [TopicPartition(topic, p) for p in range(kafka.partitions)]
    consumer.assign(parts)
    since_ms = period_start(settings, int(time.time() * 1000))
    found = await consumer.offsets_for_times({tp: since_ms for tp in parts})
    for tp in parts:
        at = found.get(tp)
        if at is None:
            await consumer.seek_to_end(tp)  # nothing written yet this period
        else:
            consumer.seek(tp, at.offset)
    return consumer


async def partitions_behind(consumer: Any) -> set[int]:
    """Partitions with records still to read (position below the end offset Kafka last reported, or no
    fetch answered yet): they hold the watermark back however long they have been silent."""
    out = set()
    for tp in consumer.assignment():
        end = consumer.highwater(tp)
        if end is None or await consumer.position(tp) < end:
            out.add(tp.partition)
    return out


async def anchor_on_finals(engine: NowEngine, redis: aioredis.Redis, anchored: int) -> int:
    """Anchor on the newest final window every resolution of the layer has released, when it is newer
    than `anchored` (the window anchored last); returns the window anchored last."""
    resolutions = (*engine.budget.resolutions, *engine.coarser)
    newest = [await recent_windows(redis, res, 1) for res in resolutions]
    if not all(newest):
        return anchored
    window = min(n[-1] for n in newest)
    if window <= anchored:
        return anchored
    frames = [await frame_at(redis, res, window) for res in resolutions]
    released = {f.res: released_people(f) for f in frames if f is not None}
    if len(released) == len(resolutions) and engine.anchor(window, engine.settings.window.window_s, released):
        return window
    return anchored


async def run_now_loop(settings: Settings, stop: asyncio.Event) -> None:
    engine = NowEngine(settings, load_city(settings.generator.city_file).bbox)
    redis = aioredis.from_url(settings.redis.url)
    consumer = await start_consumer(settings)
    counts: Counter[str] = Counter()
    anchored = -1  # the final window the layer was anchored on last
    last_stats_s = last_freeze_s = time.monotonic()
    last_input_s: float | None = None  # none before the first record: start-up is not a pause
    try:
        while not stop.is_set():
            phases = Phases()
            taken = await consumer.getmany(timeout_ms=200)
            wall_s = time.monotonic()
            phases.mark("poll")
            if taken:
                if last_input_s is not None and wall_s - last_input_s > INPUT_GAP_S:
                    log.warning(f"no clean record for {wall_s - last_input_s:.1f} s: ticks waited for ingest")
                last_input_s = wall_s
            _add_records(engine, taken, wall_s, counts)
            phases.mark("add")
            behind = await partitions_behind(consumer)
            frames = engine.step(wall_s, published_ms=int(time.time() * 1000), behind=behind)
            phases.mark("step")
            for frame in frames:
                await put_now(redis, frame, encode_now(frame))
            phases.mark("store")
            if frames:
                counts["now_ticks_released"] += 1
                anchored = await anchor_on_finals(engine, redis, anchored)
                phases.mark("anchor")
            if wall_s - last_freeze_s >= FREEZE_EVERY_S:
                gc.collect()
                gc.freeze()
                last_freeze_s = wall_s
                phases.mark("gc")
            if (slow := phases.slow()) is not None:
                counts["now_slow_loops"] += 1
                log.warning(f"slow loop, ticks held back {slow}")
            if wall_s - last_stats_s >= STATS_EVERY_S:
                await _write_stats(redis, counts, engine)
                last_stats_s = wall_s
    finally:
        await consumer.stop()
        await redis.aclose()


def _add_records(engine: NowEngine, taken: dict[Any, list[Any]], wall_s: float, counts: Counter[str]) -> None:
    """A fetch's records into the engine; one that is not clean events is counted and skipped."""
    for tp, records in taken.items():
        for record in records:
            try:
                batches = decode_record(record.value or b"", engine.settings.window.h3_res)
            except (BatchError, ValueError) as exc:  # the aggregator dead-letters it
                counts["now_undecodable_records"] += 1
                log.warning(f"{tp.topic}[{tp.partition}]@{record.offset}: not clean events ({exc})")
                continue
            for batch in batches:
                engine.add(tp.partition, batch, wall_s)


async def _write_stats(redis: aioredis.Redis, counts: Counter[str], engine: NowEngine) -> None:
    """Counters in the shared stats hash (best effort: the frames are already stored)."""
    values = {
        **counts,
        "now_late_reports": engine.late_reports,
        "now_outside_reports": engine.outside_reports,
    }
    try:
        await redis.hset(STATS_KEY, mapping={k: v for k, v in values.items()})
    except Exception as exc:
        log.warning(f"now-layer counters not written to Redis ({exc!r}): is Redis up?")


def run_now_worker(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT."""
    if not settings.now.enabled:
        raise CityScreenError(
            "the now layer is off (CITY_NOW__ENABLED=false): the manifest states no budget for it, so this "
            "worker publishes nothing; set CITY_NOW__ENABLED=true to run it"
        )
    run_until_stopped(lambda stop: run_now_loop(settings, stop))
