"""The aggregate worker: Faust agents that feed the pure engine and hand complete windows to the sink.

Two agents per process (docs/streams.md):
- `aggregate` reads the three clean topics in batches, bins and windows them (cityscreen.aggregate), keeps a
  per-partition durable log in the changelog-backed `aggregate-state` table, and sends each closed
  window's partial to the internal partials topic;
- `release` (one partition, so one worker in the group runs it) merges the partials of a window once
  every partition has closed it, and calls the release sink, which applies the privacy gate.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import time
from collections import Counter
from concurrent.futures import Executor, ProcessPoolExecutor
from typing import Any

import faust
import msgspec
import redis.asyncio as aioredis
from threadpoolctl import threadpool_limits

from cityscreen.aggregate.chunked import ChunkedLog
from cityscreen.aggregate.close import AggConfig
from cityscreen.aggregate.engine import Closed, Engine
from cityscreen.aggregate.late import LateCounts, late_letters, window_of
from cityscreen.aggregate.partial import PartialMessage, decode_header, encode_message, final_through_ms
from cityscreen.aggregate.partition import REPEATED
from cityscreen.clean_batch import BatchError
from cityscreen.events import CLEAN_TOPICS, DEADLETTER_TOPIC, FRAMES_TOPIC
from cityscreen.ingest_batch import RECORD_EVENTS
from cityscreen.lifetime import die_with_parent
from cityscreen.release_book import Release, ReleaseBook
from cityscreen.settings import Settings
from streams.app import create_app
from streams.internal_topics import BOOK_TABLE, STATE_TABLE, ensure_internal_topics, partials_topic
from streams.release import Gating, ReleaseSink, warm_gate
from streams.stall import Behind, OffsetGuard, StallWatch, polled_since

KIND_BY_TOPIC = {topic: kind for kind, topic in CLEAN_TOPICS.items()}
UNDECODABLE = "undecodable_clean_record"  # dead-letter reason: not clean events of the topic's kind


def table_put(table: Any, partition: int, key: str, value: bytes | None) -> None:
    """Write (None: delete) a key of a bytes table and its changelog partition explicitly: Faust's
    `table[key] = ...` takes the partition from the current event, which a batch of several partitions,
    or `stream.take`, does not have."""
    if value is None:
        table.data.pop(key, None)
    else:
        table.data[key] = value
    table.send_changelog(partition, key, value, key_serializer="json", value_serializer="raw")


class TableLog:
    """The engine's per-partition log in a Faust table, written to the changelog partition of the data.

    Written explicitly per partition (not through `table[key] = ...`, which uses the partition of the
    current event) because one batch mixes partitions; keys are "<partition>/<key>".
    """

    def __init__(self, table: Any) -> None:
        self.table = table

    def put(self, partition: int, key: str, value: bytes | None) -> None:
        table_put(self.table, partition, f"{partition}/{key}", value)

    def items(self, partition: int) -> list[tuple[str, bytes]]:
        prefix = f"{partition}/"
        return sorted((k[len(prefix) :], v) for k, v in self.table.data.items() if k.startswith(prefix))


def build_worker(
    settings: Settings, *, app_id: str = "cityscreen-aggregate", gate_pool: Executor | None = None
) -> faust.App:
    app = create_app(settings, app_id=app_id)
    win = settings.window
    clean = app.topic(*CLEAN_TOPICS.values(), key_serializer="raw", value_serializer="raw")
    partials = app.topic(partials_topic(app_id), partitions=1, internal=True, key_serializer="raw",
                         value_serializer="raw")  # fmt: skip
    frames = app.topic(FRAMES_TOPIC, key_serializer="raw", value_serializer="raw")
    deadletter = app.topic(DEADLETTER_TOPIC, key_serializer="raw", value_serializer="raw")
    # keys are json strings, values opaque bytes (msgpack written by the engine)
    schema: faust.Schema = faust.Schema(
        key_type=str, value_type=bytes, key_serializer="json", value_serializer="raw"
    )

    # key_type / value_type as well as the schema: Faust builds the changelog topic's serializers from
    # the types, and without them recovery decodes the msgpack values as JSON and stalls
    def bytes_table(name: str, partitions: int) -> Any:
        return app.Table(name, default=None, schema=schema, key_type=str, value_type=bytes,
                         partitions=partitions)  # fmt: skip

    state_table = bytes_table(STATE_TABLE, settings.kafka.partitions)
    book_table = bytes_table(BOOK_TABLE, 1)
    engine = Engine(AggConfig.from_settings(settings), ChunkedLog(TableLog(state_table)))
    lock = asyncio.Lock()
    redis = aioredis.Redis.from_url(settings.redis.url)

    async def send_frame(key: bytes, value: bytes) -> None:
        await (await frames.send(key=key, value=value, force=True))

    sink = ReleaseSink(redis, send_frame, settings, gate_pool=gate_pool)

    # Every send below passes force=True: inside an agent Faust otherwise attaches the message to the
    # current event and publishes it only when that event is acked, so awaiting its delivery here would
    # wait on ourselves (the stall that kept `make run` from ever releasing a frame).
    async def emit(closed: list[Closed]) -> None:
        # every message is sent before any delivery is awaited (one partition: the producer keeps their
        # order), then each close is committed once its partials are known delivered
        delivered = []
        for c in closed:
            # each partial says only its own window is final: a crash between two sends then cannot
            # make the release agent treat the later window as complete for this partition
            key = str(c.partition).encode()
            for part in c.partials:
                msg = PartialMessage(c.partition, final_through_ms(part, win.window_s), part)
                delivered.append(await partials.send(key=key, value=encode_message(msg), force=True))
            progress = PartialMessage(c.partition, c.closed_through_ms, None)
            delivered.append(await partials.send(key=key, value=encode_message(progress), force=True))
        for fut in delivered:
            await fut
        for c in closed:
            engine.commit_close(c)

    late_counts = LateCounts(win.window_s)

    async def dead_letter(late: list[tuple[str, dict[str, Any]]]) -> None:
        # the rows carry pseudonym, cell, time and demographics: only late_letters' fields leave
        late_counts.add(row for _, row in late)
        for topic in sorted({t for t, _ in late}):
            for letter in late_letters(topic, (row for t, row in late if t == topic), win.window_s):
                await deadletter.send(key=None, value=letter, force=True)
        await sink.count(late_events=len(late), dead_lettered=len(late))
        for w in sorted({window_of(int(row["ts_ms"]), win.window_s) for _, row in late}):
            events, cells = late_counts.summary(w)
            app.log.warning(f"window {w}: {events} late events so far, in {cells} cells (dead-lettered)")

    async def undecodable(m: Any, kind: str, exc: Exception) -> None:
        """A clean record that is not clean events of its topic's kind: dead-lettered, never retried."""
        engine.skip(m.partition, kind, m.offset)
        where = {"topic": m.topic, "partition": m.partition, "offset": m.offset}
        body = msgspec.json.encode({"reason": UNDECODABLE, "detail": str(exc)[:200], **where})
        await deadletter.send(key=None, value=body, force=True)
        await sink.count(dead_lettered=1, undecodable_records=1)
        app.log.error(f"{m.topic}[{m.partition}]@{m.offset}: dead-lettered, not clean {kind} events: {exc}")

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def on_revoked(app: faust.App, revoked: set[Any], **kwargs: Any) -> None:
        engine.drop({tp.partition for tp in revoked if tp.topic in KIND_BY_TOPIC})

    guard = OffsetGuard()
    unsaid: Counter[str] = Counter()  # worker counters not yet in Redis

    async def admitted(m: Any, kind: str, now: float) -> bool:
        """Whether to apply this record (streams/stall.py: records Faust lost are read again)."""
        action, at = guard.admit(m.partition, kind, m.offset, engine.applied_offset(m.partition, kind), now)
        if action == "seek":
            app.log.warning(
                f"{m.topic}[{m.partition}]: offset {m.offset} arrived but {at} was never delivered; "
                f"seeking back to {at} (records the Kafka client fetched and Faust dropped)"
            )
            await app.consumer.seek(m.tp, at)
        elif action == "hole":
            app.log.warning(
                f"{m.topic}[{m.partition}]: offsets {at} to {m.offset - 1} no longer exist (retention); "
                f"reading from {m.offset}"
            )
        return action in ("apply", "hole")

    @app.agent(clean)
    async def aggregate(stream: Any) -> None:
        # take_events counts records, and each clean record holds up to RECORD_EVENTS events
        records_per_take = max(1, win.max_batch_events // RECORD_EVENTS)
        async for events in stream.take_events(records_per_take, within=win.flush_s):
            async with lock:
                started = time.monotonic()
                late: list[tuple[str, dict[str, Any]]] = []
                n = 0
                for event in events:
                    m = event.message
                    kind = KIND_BY_TOPIC[m.topic]
                    if await admitted(m, kind, started):
                        try:
                            late_rows = engine.apply(m.partition, kind, m.offset, event.value)
                        except (BatchError, msgspec.DecodeError, msgspec.ValidationError) as exc:
                            await undecodable(m, kind, exc)
                            continue
                        late.extend((m.topic, row) for row in late_rows)
                        n += 1
                engine.persist()
                if late:
                    await dead_letter(late)
                unsaid["records"] += n  # into the stats hash at the next timer tick, not per batch
                tally = engine.take_tally()
                unsaid.update(tally)
                if tally[REPEATED]:
                    app.log.warning(
                        f"{tally[REPEATED]} clean events skipped as already counted: the ingest edge wrote "
                        "them again (an ingest worker stopped between delivering and committing a batch)"
                    )
                await emit(engine.close_due())
                engine.pause_idle(time.monotonic() - started)

    stall = StallWatch()
    reported_lag: dict[str, int] = {}

    # a partition idle for idle_close_s is noticed within a quarter of it (and within flush_s): a
    # coarser tick would add up to a whole tick to the last window's release at the end of a feed
    @app.timer(interval=min(win.flush_s, win.idle_close_s / 4))
    async def close_idle() -> None:
        if unsaid:
            counts = dict(unsaid)
            unsaid.clear()
            await sink.count(**counts)
        if not app.tables.recovery.completed.is_set():  # type: ignore[attr-defined]
            return
        assigned = [tp for tp in app.consumer.assignment() if tp.topic in KIND_BY_TOPIC]
        # the end offsets the broker reported with the client's latest fetch of each partition (None
        # before the first): a topic is quiet only once everything written to it was applied. Not
        # `consumer.highwaters()`: that request queues behind the consumer thread's long-poll fetch and
        # took about a second per tick. A fetch is always in flight for a read-out partition, so these
        # are as fresh as an explicit request, and idleness is required on top.
        ends = {tp: app.consumer.highwater(tp) for tp in assigned}
        end_of = {(tp.partition, KIND_BY_TOPIC[tp.topic]): end for tp, end in ends.items() if end is not None}

        async with lock:
            # restore assigned partitions even if nothing new arrives, so their windows still close
            engine.load(tp.partition for tp in assigned)
            applied = {pk: engine.applied_offset(*pk) for pk in end_of}
            behind = [(p, k, applied[p, k], end) for (p, k), end in end_of.items() if applied[p, k] + 1 < end]
            lag = {
                f"aggregate:{CLEAN_TOPICS[k]}:{p}": end - applied[p, k] - 1 for (p, k), end in end_of.items()
            }
            unread = {(p, k) for p, k, _, _ in behind}
            # read to its end only if the client fetched it after its last record (stall.py): a quiet
            # kind has had no record for idle_close_s, so a fetch within that time came after it
            polled = _last_polls(app, assigned)
            now_ms, max_age_s = time.time() * 1000, win.idle_close_s
            fresh = {(tp.partition, KIND_BY_TOPIC[tp.topic]) for tp in assigned
                     if polled_since(polled.get(tp), now_ms, max_age_s)}  # fmt: skip

            def caught_up(partition: int, kind: str) -> bool:
                pk = (partition, kind)
                return pk in end_of and pk not in unread and pk in fresh

            verdict = stall.check(
                time.monotonic(), sum(applied.values()), behind, lambda lag: _fetch_state(app, lag)
            )
            if verdict.warning:
                app.log.warning(verdict.warning)
            await _reseek(app, verdict.reseek)
            if lag != reported_lag:  # a write when it changes, not every tick
                await sink.record_lag(lag)
                reported_lag.clear()
                reported_lag.update(lag)
            started = time.monotonic()
            await emit(
                engine.close_due(idle_s=win.idle_close_s, caught_up=caught_up, wall_ms=time.time() * 1000)
            )
            engine.pause_idle(time.monotonic() - started)

    book: dict[str, ReleaseBook] = {}

    def book_put(key: str, value: bytes | None) -> None:
        table_put(book_table, 0, key, value)  # one partition

    def load_book() -> ReleaseBook:
        if "b" not in book:
            meta = book_table.get("meta")
            rb = ReleaseBook(settings.kafka.partitions, window_s=win.window_s)
            if meta:
                m = msgspec.msgpack.decode(meta)
                rb.state.closed_through = {int(k): v for k, v in m["closed"].items()}
                rb.state.released_through = m["released"]
            for key in sorted(k for k in book_table if k.startswith("part/")):
                rb.add(decode_header(book_table[key]))
            book["b"] = rb
        return book["b"]

    async def settle(previous: asyncio.Future[None] | None, gatings: list[Gating], meta: bytes) -> None:
        """After the previous batch's windows: store this batch's gated windows, drop their partials
        from the book, then record what was released (never before it is stored)."""
        if previous is not None:
            await previous
        await sink.store_gated(gatings)
        for rel, _ in gatings:
            for key in [k for k in book_table if k.startswith(f"part/{rel.book_key()}/")]:
                book_put(key, None)
        book_put("meta", meta)

    settling: list[asyncio.Future[None]] = []  # the latest batch's settle; each awaits the one before

    @app.agent(partials)
    async def release(stream: Any) -> None:
        # in batches: a partition that closes several windows at once sends their partials together.
        # Gating starts at once, in the gate pool, and the agent goes on reading: a window completed
        # meanwhile is gated in parallel instead of waiting for the windows before it. Storing stays
        # in window order (fused indicators read the previous window's frame).
        async for values in stream.take(256, within=0.05):
            if settling and settling[0].done():
                settling.pop().result()  # a failed store stops the agent, with its error
            rb = load_book()
            for value in values:
                head = decode_header(value)  # the partial itself stays compressed until it is merged
                rb.add(head)
                if head.blob is not None and head.window_start_ms is not None:
                    rel = Release(head.window_start_ms, head.span_s)
                    book_put(f"part/{rel.book_key()}/{head.partition}", value)
            gatings = sink.gate_partials_soon(rb.take_complete())
            meta = {"closed": rb.state.closed_through, "released": rb.state.released_through}
            previous = settling.pop() if settling else None
            settling.append(asyncio.ensure_future(settle(previous, gatings, msgspec.msgpack.encode(meta))))

    @app.task
    async def manifest() -> None:
        await sink.publish_manifest()

    return app


def _last_polls(app: faust.App, assigned: list[Any]) -> dict[Any, int | None]:
    """When the Kafka client last had a fetch response for each partition (wall-clock ms; aiokafka's
    `last_poll_timestamp`). Faust does not expose it, so this reaches its client; if that fails, no
    partition counts as fresh, so windows close on event time alone and none closes early."""
    try:
        client = app.consumer._thread._ensure_consumer()  # type: ignore[attr-defined]
        return {tp: client.last_poll_timestamp(tp) for tp in assigned}
    except Exception:  # a private path of Faust: never take the worker down over it
        return {}


def _fetch_state(app: faust.App, lagging: list[Behind]) -> str:
    """Faust's and aiokafka's view of the lagging partitions (private attributes: diagnostics only)."""
    consumer = app.consumer
    parts = []
    for name in ("_active_partitions", "_paused_partitions", "_buffered_partitions"):
        tps = getattr(consumer, name, None) or set()
        names = sorted(f"{KIND_BY_TOPIC[t.topic]}[{t.partition}]" for t in tps if t.topic in KIND_BY_TOPIC)
        parts.append(f"{name.strip('_').split('_')[0]}: {' '.join(names) or '-'}")
    flow = "on" if getattr(consumer, "flow_active", True) else "off"
    positions = []
    try:
        client = consumer._thread._consumer  # type: ignore[attr-defined]
        read, committed = consumer._read_offset, consumer._committed_offset  # type: ignore[attr-defined]
        for p, kind, _, _ in lagging:
            tp = next(t for t in consumer.assignment() if t.partition == p and t.topic == CLEAN_TOPICS[kind])
            st = client._subscription.subscription.assignment.state_value(tp)
            positions.append(
                f"{kind}[{p}] fetch position {st._position} paused {st._paused} highwater {st.highwater}"
                f" read {read.get(tp)} committed {committed.get(tp)}"
            )
    except Exception as exc:  # diagnostics must never take the worker down
        positions.append(f"(positions unavailable: {exc!r})")
    return f"Faust fetch state {'; '.join(parts)}; flow {flow}; {'; '.join(positions)}"


async def _reseek(app: faust.App, lagging: list[Behind]) -> None:
    """Seek lagging clean partitions back to their first unapplied offset (streams/stall.py says why)."""
    by_name = {(tp.topic, tp.partition): tp for tp in app.consumer.assignment()}
    for p, kind, applied, _ in lagging:
        tp = by_name.get((CLEAN_TOPICS[kind], p))
        if tp is not None:  # revoked meanwhile: its new owner reads it from the committed offset
            await app.consumer.seek(tp, applied + 1)


def run_aggregate_worker(settings: Settings, *, app_id: str = "cityscreen-aggregate") -> None:
    """Run the aggregate worker until SIGTERM / Ctrl-C."""
    # One BLAS thread: the gate's small eigh problems run 7x slower with OpenBLAS's thread pool, and
    # far slower still when other processes (the broker, a second worker) want the same two cores.
    threadpool_limits(1)
    os.environ["OPENBLAS_NUM_THREADS"] = "1"  # and in the gate's process, which imports numpy afresh
    # frames of a dense city exceed Kafka's 1 MB default record size (streams/internal_topics.py)
    kafka = settings.kafka
    ensure_internal_topics(kafka.bootstrap, app_id, kafka.partitions, large_topics=(FRAMES_TOPIC,),
                           replication_factor=kafka.replication_factor)  # fmt: skip
    # spawn, not fork: the parent runs threads (aiokafka, Faust) that a forked child would inherit mid-lock
    spawn = multiprocessing.get_context("spawn")
    processes = settings.privacy.gate_processes
    with ProcessPoolExecutor(
        processes, spawn, initializer=die_with_parent, initargs=(os.getpid(),)
    ) as gate_pool:
        for started in [gate_pool.submit(warm_gate) for _ in range(processes)]:
            started.result()
        app = build_worker(settings, app_id=app_id, gate_pool=gate_pool)
        worker = faust.Worker(app, loglevel="WARNING")
        worker.execute_from_commandline()
