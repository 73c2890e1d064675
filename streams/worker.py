"""The aggregate worker: the wiring of Faust agents that feed the pure engine and hand complete windows to
the sink.

Two agents per process (docs/streams.md), each a thin loop over a plain class:
- `aggregate` (streams/aggregate_agent.py: AggregateAgent) reads the three clean topics in batches, bins
  and windows them (cityscreen.aggregate), keeps a per-partition durable log in the changelog-backed
  `aggregate-state` table (streams/tables.py), and sends each closed window's partial to the internal
  partials topic; a timer closes the windows of idle partitions;
- `release` (streams/release_agent.py: ReleaseAgent; one partition, so one worker in the group runs it)
  books the partials in the `release-book` table (cityscreen/release_book.py: StoredBook) and hands
  each window every partition has closed to the release sink (streams/release.py), which applies the
  privacy gate.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import time
from collections.abc import Awaitable
from concurrent.futures import Executor, ProcessPoolExecutor
from typing import Any

import faust
import redis.asyncio as aioredis
from faust.types import TP
from threadpoolctl import threadpool_limits

from cityscreen.aggregate.chunked import ChunkedLog
from cityscreen.aggregate.close import AggConfig
from cityscreen.aggregate.engine import Engine
from cityscreen.events import CLEAN_TOPICS, DEADLETTER_TOPIC, FRAMES_TOPIC
from cityscreen.lifetime import die_with_parent
from cityscreen.settings import Settings
from streams.aggregate_agent import KIND_BY_TOPIC, AggregateAgent, CleanRecord
from streams.app import App, create_app
from streams.internal_topics import BOOK_TABLE, STATE_TABLE, ensure_internal_topics, partials_topic
from streams.recovery_guard import RecoveryGuard
from streams.release import ReleaseSink, warm_gate
from streams.release_agent import ReleaseAgent
from streams.stall import Behind, client_view
from streams.tables import TableBookLog, TableLog, bytes_table


def _quiet_buffer_full(record: logging.LogRecord) -> bool:
    """Faust's "producer buffer full" warning, dropped: a close writes about a thousand table entries at
    once, and past 100 pending changelog messages Faust warned about ten times a close while it flushed
    them, which is how the bound works. The bound stays: Faust's flush before a commit gives up after
    0.1 s without a send, so more pending changelog messages make a commit ahead of them likelier (with
    a bound of 10,000, tests/integration/test_lost_records.py failed once under load)."""
    return not record.getMessage().startswith("producer buffer full")


class FaustConsumer:
    """Faust's consumer as the aggregate agent's `CleanConsumer` (looked up per call: Faust creates it
    when the app starts)."""

    def __init__(self, app: faust.App) -> None:
        self.app = app

    def assigned(self) -> list[tuple[str, int]]:
        return [(tp.topic, tp.partition) for tp in self.app.consumer.assignment()]

    def highwater(self, topic: str, partition: int) -> int | None:
        end: int | None = self.app.consumer.highwater(TP(topic, partition))
        return end

    def polled_ms(self, topic: str, partition: int) -> int | None:
        # aiokafka's `last_poll_timestamp`; Faust does not expose it, so this reaches its client. If that
        # fails, no partition counts as fresh: windows then close on event time alone, never early.
        try:
            client = self.app.consumer._thread._ensure_consumer()  # type: ignore[attr-defined]
            polled: int | None = client.last_poll_timestamp(TP(topic, partition))
            return polled
        except Exception:  # a private path of Faust: never take the worker down over it
            return None

    async def seek(self, topic: str, partition: int, offset: int) -> None:
        await self.app.consumer.seek(TP(topic, partition), offset)

    def recovered(self) -> bool:
        """Whether the tables hold every assigned partition's changelog. Faust sets `completed` at the
        end of the first recovery and never clears it, so during a later rebalance it stays set while the
        tables are being recovered again (a tick then restored a returning partition from a half-read
        table, suspected in a failed rebalance test: a stock 12 persons too high). `rebalancing` holds from
        the revocation until Faust resumes the streams after that recovery."""
        # TableManagerT does not declare the recovery service its implementation has
        done = bool(self.app.tables.recovery.completed.is_set())  # type: ignore[attr-defined]
        return done and not self.app.rebalancing

    def fetch_state(self, lagging: list[Behind]) -> str:
        return _fetch_state(self.app, lagging)


def build_worker(
    settings: Settings, *, app_id: str = "cityscreen-aggregate", gate_pool: Executor | None = None
) -> faust.App:
    """The aggregate worker's Faust app: its topics and tables, the two agents, the idle-close timer."""
    app = create_app(settings, app_id=app_id)
    logging.getLogger("faust.transport.producer").addFilter(_quiet_buffer_full)
    clean = app.topic(*CLEAN_TOPICS.values(), key_serializer="raw", value_serializer="raw")
    partials = app.topic(partials_topic(app_id), partitions=1, internal=True, key_serializer="raw",
                         value_serializer="raw")  # fmt: skip
    frames = app.topic(FRAMES_TOPIC, key_serializer="raw", value_serializer="raw")
    deadletter = app.topic(DEADLETTER_TOPIC, key_serializer="raw", value_serializer="raw")
    state_table = bytes_table(app, STATE_TABLE, settings.kafka.partitions)
    book_table = bytes_table(app, BOOK_TABLE, 1)

    # Every send passes force=True: inside an agent Faust otherwise attaches the message to the current
    # event and publishes it only when that event is acked, so awaiting its delivery here would wait on
    # ourselves (the stall that kept `make run` from ever releasing a frame).
    async def send_frame(key: bytes, value: bytes) -> None:
        await (await frames.send(key=key, value=value, force=True))

    async def send_partial(key: bytes, value: bytes) -> Awaitable[object]:
        delivery: Awaitable[object] = await partials.send(key=key, value=value, force=True)
        return delivery

    async def send_dead(value: bytes) -> object:
        return await deadletter.send(key=None, value=value, force=True)

    book_log = TableBookLog(book_table)  # the release book and the gate's memory, moving together
    sink = ReleaseSink(aioredis.Redis.from_url(settings.redis.url), send_frame, settings, gate_pool=gate_pool,
                       kept_log=book_log)  # fmt: skip
    engine = Engine(AggConfig.from_settings(settings), ChunkedLog(TableLog(state_table)))
    aggregator = AggregateAgent(engine, settings.window, send_partial=send_partial, send_dead=send_dead,
                                stats=sink, consumer=FaustConsumer(app), log=app.log,
                                release_busy=lambda: sink.in_flight > 0)  # fmt: skip
    partials_tp = TP(partials_topic(app_id), 0)

    async def seek_partials(offset: int) -> None:
        if partials_tp in app.consumer.assignment():  # else its new owner reads it from the commit
            await app.consumer.seek(partials_tp, offset)

    releaser = ReleaseAgent(book_log, sink, partitions=settings.kafka.partitions,
                            window_s=settings.window.window_s, seek=seek_partials,
                            warn=app.log.warning)  # fmt: skip
    private: Any = app  # Faust's types declare neither its recovery service nor the consumer's offsets
    guard = RecoveryGuard(lambda: private.tables.recovery, lambda: private.consumer, app.log)
    _declare(app, settings, clean, partials, partials_tp, aggregator, releaser, sink, guard)
    return app


def _declare(
    app: App,
    settings: Settings,
    clean: faust.TopicT,
    partials: faust.TopicT,
    partials_tp: TP,  # its one partition
    aggregator: AggregateAgent,
    releaser: ReleaseAgent,
    sink: ReleaseSink,
    guard: RecoveryGuard,
) -> None:
    """The Faust agents, timers, task and rebalance hook: thin loops over the plain classes."""
    flush_s = settings.window.flush_s

    async def aggregate(stream: Any) -> None:  # a faust Stream: take_events is not on StreamT
        async for events in stream.take_events(aggregator.records_per_take, within=flush_s):
            records = [(e.message, e.value) for e in events]
            await aggregator.on_batch([CleanRecord(m.topic, m.partition, m.offset, v) for m, v in records])

    async def release(stream: Any) -> None:
        # in batches: a partition that closes several windows at once sends their partials together
        async for events in stream.take_events(256, within=0.05):
            await releaser.on_records([(e.message.offset, e.value) for e in events], time.monotonic())

    async def close_idle() -> None:
        # a loop of its own, not Faust's timer: a tick that closes a census minute runs a second or two,
        # longer than the interval, and the timer logged "Timer ... is overlapping" for it every minute
        # beside the worker's own "slow tick" line, which says what took the time
        while True:
            await asyncio.sleep(aggregator.tick_s)
            await aggregator.tick()

    async def watch_recovery() -> None:
        consumer = FaustConsumer(app)
        while True:
            await asyncio.sleep(5.0)
            await guard.check(time.monotonic())
            if consumer.recovered() and partials_tp in app.consumer.assignment():
                await releaser.check_stall(time.monotonic(), _end_offset(app, partials_tp))

    async def manifest() -> None:
        await sink.publish_manifest()

    async def on_revoked(app: faust.App, revoked: set[TP], **kwargs: Any) -> None:
        aggregator.revoked(revoked)
        releaser.revoked()

    # called, not used as decorators: Faust's task decorators are untyped. The agents keep
    # the names Faust gave them before, as decorated functions of this module
    app.agent(clean, name="streams.worker.aggregate")(aggregate)
    app.agent(partials, name="streams.worker.release")(release)
    app.task(close_idle)
    app.early_task(watch_recovery)  # from the start: the first recovery can stall too
    app.task(manifest)
    app.on_partitions_revoked.connect(on_revoked)  # type: ignore[arg-type]


def _end_offset(app: faust.App, tp: TP) -> int | None:
    """The end offset the Kafka client last heard for `tp` (None: not yet, or no longer assigned)."""
    try:
        end: int | None = app.consumer.highwater(tp)
        return end
    except Exception:  # revoked since the assignment was read: the next check skips it
        return None


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
        committed = consumer._committed_offset  # type: ignore[attr-defined]
        for p, kind, _, _ in lagging:
            tp = next(t for t in consumer.assignment() if t.partition == p and t.topic == CLEAN_TOPICS[kind])
            positions.append(f"{kind}[{p}] {client_view(consumer, tp)} committed {committed.get(tp)}")
    except Exception as exc:  # diagnostics must never take the worker down
        positions.append(f"(positions unavailable: {exc!r})")
    return f"Faust fetch state {'; '.join(parts)}; flow {flow}; {'; '.join(positions)}"


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
