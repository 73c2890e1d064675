"""The release path as plain parts, in-process with fake collaborators (no Kafka, no Redis server, no
sleeps): the aggregate agent turns clean records into partials, the release agent publishes each
complete window exactly once, and the release book comes back from its log after a crash."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable
from pathlib import Path

import msgspec
import pytest

from cityscreen.aggregate.close import AggConfig
from cityscreen.aggregate.engine import SNAPSHOT, DictLog, Engine
from cityscreen.aggregate.partial import decode_message
from cityscreen.clean_batch import encode_batch
from cityscreen.events import CLEAN_TOPICS
from cityscreen.frames import decode_frame, encode_frame
from cityscreen.release_book import DictBookLog, StoredBook
from cityscreen.settings import Settings
from streams.aggregate_agent import UNDECODABLE, AggregateAgent, CleanRecord
from streams.release import ReleaseSink
from streams.release_agent import ReleaseAgent
from streams.stall import Behind
from tests.support.streams_support import (
    ONE_WINDOW,
    expected_frames,
    make_raw_events,
    run_engine,
    split_records,
    to_clean,
)
from tests.unit.test_release_gate_pool import _Redis

SETTINGS = Settings(kafka={"partitions": 2}, window=ONE_WINDOW)
RES = SETTINGS.window.h3_res
Feed = tuple[list[CleanRecord], dict[tuple[int, int], bytes]]  # clean records, the reference frames


class Clock:
    """Monotonic time that moves only when a test says so."""

    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


class Consumer:
    """Every clean partition assigned, each read to `ends`; records `seek`s."""

    def __init__(self, ends: dict[tuple[str, int], int]) -> None:
        self.ends, self.seeks = ends, list[tuple[str, int, int]]()

    def assigned(self) -> list[tuple[str, int]]:
        return sorted(self.ends)

    def highwater(self, topic: str, partition: int) -> int | None:
        return self.ends.get((topic, partition))

    def polled_ms(self, topic: str, partition: int) -> int | None:
        return int(time.time() * 1000)  # every partition fetched just now

    async def seek(self, topic: str, partition: int, offset: int) -> None:
        self.seeks.append((topic, partition, offset))

    def recovered(self) -> bool:
        return True

    def fetch_state(self, lagging: list[Behind]) -> str:
        return ""


class Stats:
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.lag: dict[str, int] = {}

    async def count(self, **counters: int) -> None:
        self.counts.update(counters)

    async def record_lag(self, lag_records: dict[str, int]) -> None:
        self.lag.update(lag_records)


class Log:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def warning(self, message: str) -> None:
        self.lines.append(message)

    def error(self, message: str) -> None:
        self.lines.append(message)


class Harness:
    """An aggregate agent over the real engine, its partials and dead letters kept in lists."""

    def __init__(self, records: list[CleanRecord]) -> None:
        ends: dict[tuple[str, int], int] = {}
        for r in records:
            ends[r.topic, r.partition] = max(ends.get((r.topic, r.partition), 0), r.offset + 1)
        self.clock, self.stats, self.log = Clock(), Stats(), Log()
        self.consumer = Consumer(ends)
        self.partials: list[bytes] = []
        self.dead: list[bytes] = []
        self.engine_log = DictLog()
        engine = Engine(AggConfig.from_settings(SETTINGS), self.engine_log, clock=self.clock)
        self.agent = AggregateAgent(engine, SETTINGS.window, send_partial=self.send_partial,
                                    send_dead=self.send_dead, stats=self.stats, consumer=self.consumer,
                                    log=self.log, clock=self.clock)  # fmt: skip

    async def send_partial(self, key: bytes, value: bytes) -> Awaitable[object]:
        assert key == str(decode_message(value).partition).encode()
        self.partials.append(value)
        delivered = asyncio.get_running_loop().create_future()
        delivered.set_result(None)
        return delivered

    async def send_dead(self, value: bytes) -> object:
        self.dead.append(value)
        return None

    def snapshot_closed(self, partition: int) -> int | None:
        """The closed-through of the partition's snapshot in the engine's log."""
        raw = dict(self.engine_log.items(partition)).get(SNAPSHOT)
        return None if raw is None else msgspec.msgpack.decode(raw)["closed"]

    async def feed(self, records: list[CleanRecord], batch: int = 10) -> None:
        for i in range(0, len(records), batch):
            await self.agent.on_batch(records[i : i + batch])
        self.clock.now_s += SETTINGS.window.idle_close_s + 1  # every partition idle, and read to its end
        await self.agent.tick()


def _feed(seed: int = 7, per_record: int = 9) -> tuple[list[CleanRecord], dict[tuple[int, int], bytes]]:
    """Clean records of two partitions, and the frames the pipeline must publish for them."""
    raw = make_raw_events(persons=60, minutes=4, late=0, seed=seed)
    split = split_records([to_clean(r, SETTINGS) for r in raw], SETTINGS.kafka.partitions, per_record)
    records = [CleanRecord(CLEAN_TOPICS[kind], p, offset, encode_batch(kind, evs, RES))
               for p, kind, offset, evs in split]  # fmt: skip
    return records, expected_frames(run_engine(split, SETTINGS), SETTINGS)


@pytest.fixture(scope="module")
def feed() -> Feed:
    return _feed()


def _partials(feed: Feed) -> list[bytes]:
    """The partials-topic records the aggregate agent sends for `feed`, in order."""
    harness = Harness(feed[0])
    asyncio.run(harness.feed(feed[0]))
    return harness.partials


@pytest.fixture(scope="module")
def partials(feed: Feed) -> list[bytes]:
    return _partials(feed)


class Screen:
    """The real release sink over an in-memory Redis; the frames it sent, by (res, window start)."""

    def __init__(self) -> None:
        self.redis = _Redis()
        self.sent: list[tuple[int, int]] = []
        self.frames: dict[tuple[int, int], bytes] = {}
        self.sink = ReleaseSink(self.redis, self.send_frame, SETTINGS, clock_ms=lambda: 0)

    async def send_frame(self, key: bytes, value: bytes) -> None:
        frame = decode_frame(value)
        frame.published_ms = 0
        where = (frame.res, frame.window_start_ms)
        self.sent.append(where)
        self.frames[where] = encode_frame(frame)

    def agent(self, log: DictBookLog) -> ReleaseAgent:
        return ReleaseAgent(log, self.sink, partitions=SETTINGS.kafka.partitions,
                            window_s=SETTINGS.window.window_s)  # fmt: skip

    def windows_published(self) -> int:
        return self.redis.hashes.get("city:stats", {}).get("windows_published", 0)


def _of(partials: list[bytes], partition: int) -> list[bytes]:
    return [v for v in partials if decode_message(v).partition == partition]


def _windows(partials: list[bytes]) -> list[int]:
    return sorted({m.partial.window_start_ms for m in map(decode_message, partials) if m.partial})


async def test_the_aggregate_agent_sends_every_partitions_partial_of_every_window(
    feed: Feed, partials: list[bytes]
) -> None:
    records, expected = feed
    windows = sorted({w for _, w in expected})
    assert len(windows) >= 4
    for p in range(SETTINGS.kafka.partitions):
        mine = [decode_message(v) for v in _of(partials, p)]
        assert _windows(_of(partials, p)) == windows  # each partition closed every window, once
        assert len([m for m in mine if m.partial]) == len(windows)
        assert mine[-1].partial is None and mine[-1].closed_through_ms >= windows[-1]  # progress last
    harness = Harness(records)
    await harness.feed(records)
    assert harness.stats.counts["records"] == len(records)
    # the closes the watermark made, timed from their windows' ends (the wall clock is months later)
    assert 0 < harness.stats.counts["closes_delivered"] < len(_windows(partials)) * SETTINGS.kafka.partitions
    assert harness.stats.counts["closed_after_end_ms"] > 86_400_000 * harness.stats.counts["closes_delivered"]
    assert harness.stats.lag and set(harness.stats.lag.values()) == {0}  # read to the end
    assert harness.dead == [] and harness.consumer.seeks == []


async def test_a_close_is_committed_at_the_next_tick_after_its_partials_went_out(feed: Feed) -> None:
    """The commit (snapshot, carry delta) waits for a tick when this worker's release is idle, so that
    the release agent can fetch the partials and gate first; a close in a batch commits the one before
    it first; a revoked partition's pending commit is its new owner's to redo."""
    records, _ = feed
    harness = Harness(records)
    await harness.feed(records)  # batches close most windows, the last tick the rest
    pending = {c.partition: c.closed_through_ms for c in harness.agent.uncommitted}
    assert set(pending) == set(range(SETTINGS.kafka.partitions))
    assert all(harness.snapshot_closed(p) != through for p, through in pending.items())
    assert all(harness.snapshot_closed(p) is not None for p in pending)  # earlier closes are committed
    harness.agent.release_busy = lambda: True
    await harness.agent.tick()
    assert {c.partition for c in harness.agent.uncommitted} == set(pending)  # the gate goes first
    harness.agent.release_busy = lambda: False
    await harness.agent.tick()
    assert harness.agent.uncommitted == []
    assert {p: harness.snapshot_closed(p) for p in pending} == pending
    later = Harness(records)
    await later.feed(records)
    later.agent.revoked([(CLEAN_TOPICS["sim"], 0)])
    assert {c.partition for c in later.agent.uncommitted} == set(pending) - {0}


async def test_no_window_closes_while_the_close_before_it_waits_for_its_commit(feed: Feed) -> None:
    half = feed[0][: len(feed[0]) // 2]
    harness = Harness(half)  # read to the end once these are applied
    for i in range(0, len(half), 10):
        await harness.agent.on_batch(half[i : i + 10])
    assert harness.agent.uncommitted, "the batches closed a window"
    harness.clock.now_s += SETTINGS.window.idle_close_s + 1  # idle: the open windows could close now
    harness.agent.release_busy = lambda: True
    sent = len(harness.partials)
    await harness.agent.tick()
    assert len(harness.partials) == sent and harness.agent.uncommitted
    harness.agent.release_busy = lambda: False
    await harness.agent.tick()
    assert len(harness.partials) > sent  # committed, then closed
    assert {c.partition for c in harness.agent.uncommitted} == set(range(SETTINGS.kafka.partitions))


async def test_an_undecodable_record_is_dead_lettered_and_the_rest_applied(feed: Feed) -> None:
    records, _ = feed
    first = records[0]
    same = (first.topic, first.partition)
    moved = [r._replace(offset=r.offset + 1) if (r.topic, r.partition) == same else r for r in records]
    broken = [first._replace(value=b"\x00 not a clean batch"), *moved]
    harness = Harness(broken)
    await harness.feed(broken)
    [letter] = [msgspec.json.decode(d) for d in harness.dead]
    assert letter["reason"] == UNDECODABLE and letter["offset"] == first.offset
    assert harness.stats.counts["undecodable_records"] == 1
    assert harness.stats.counts["records"] == len(records)


async def test_aggregate_then_release_publishes_the_reference_frames_each_once(
    feed: Feed, partials: list[bytes]
) -> None:
    _, expected = feed
    screen = Screen()
    agent = screen.agent(DictBookLog())
    for i in range(0, len(partials), 3):  # a few at a time, as the partials topic delivers them
        agent.on_batch(partials[i : i + 3])
    await agent.settled()
    assert screen.frames == expected
    assert sorted(screen.sent) == sorted(expected)  # each frame sent once
    assert screen.windows_published() == len({w for _, w in expected})


async def test_a_window_is_released_once_every_partition_closed_it_and_never_again(
    partials: list[bytes],
) -> None:
    screen = Screen()
    agent = screen.agent(DictBookLog())
    agent.on_batch(_of(partials, 0))
    await agent.settled()
    assert screen.sent == []  # partition 1 has closed nothing yet
    agent.on_batch(_of(partials, 1))
    await agent.settled()
    sent = list(screen.sent)
    assert screen.windows_published() == len(_windows(partials)) > 0
    agent.on_batch(partials)  # a redelivery of everything
    await agent.settled()
    assert screen.sent == sent and screen.windows_published() == len(_windows(partials))


async def test_the_release_book_comes_back_from_its_log_after_a_crash(
    feed: Feed, partials: list[bytes]
) -> None:
    """Killed with partition 0's partials booked and unreleased: a new agent over the same log releases
    every window once the rest arrives, with the frames of the reference."""
    _, expected = feed
    screen = Screen()
    log = DictBookLog()
    before = screen.agent(log)
    before.on_batch(_of(partials, 0))
    await before.settled()
    assert screen.sent == []
    del before  # SIGKILL: only the log is left
    after = screen.agent(log)
    after.on_batch(_of(partials, 1))
    await after.settled()
    assert screen.frames == expected and sorted(screen.sent) == sorted(expected)
    assert [k for k in log.data if k.startswith("part/")] == []  # released windows leave the log


async def test_a_crash_between_storing_and_settling_publishes_nothing_twice(
    feed: Feed, partials: list[bytes]
) -> None:
    """The log as a SIGKILL leaves it after the frames were stored but before the book settled: the
    windows complete again after the restart, and the sink's frame index keeps them from a second
    publication."""
    _, expected = feed
    screen = Screen()
    log = DictBookLog()
    agent = screen.agent(log)
    agent.on_batch(partials)
    crashed = dict(log.data)  # booked, not yet settled: the settle runs once the frames are stored
    await agent.settled()
    assert sorted(screen.sent) == sorted(expected)
    log.data = crashed
    restarted = screen.agent(log)
    restarted.on_batch(partials[-1:])  # Faust re-delivers what was not committed
    await restarted.settled()
    assert sorted(screen.sent) == sorted(expected)  # nothing sent again
    assert screen.windows_published() == len({w for _, w in expected})
    assert [k for k in log.data if k.startswith("part/")] == []


async def test_a_worker_that_gets_the_release_partition_back_reads_the_book_again(
    feed: Feed, partials: list[bytes]
) -> None:
    """Worker A has read its book and loses the release partition; worker B, holding it meanwhile,
    books partition 1's partial of the first window (nothing completes); the partition comes back to
    A, which is redelivered everything after that partial only. A book A kept in memory across the
    revoke lacks B's partial, so it released the first window without partition 1's part of it."""
    _, expected = feed
    first = _windows(partials)[0]

    def of_first(v: bytes) -> bool:
        m = decode_message(v)
        return m.partial is not None and m.partial.window_start_ms == first

    screen = Screen()
    log = DictBookLog()
    a = screen.agent(log)
    a.on_batch([])
    await a.settled()
    a.revoked()
    b = screen.agent(log)
    b.on_batch([v for v in _of(partials, 1) if of_first(v)])
    await b.settled()
    assert screen.sent == []  # partition 0 has closed nothing yet
    a.on_batch(_of(partials, 0) + [v for v in _of(partials, 1) if not of_first(v)])
    await a.settled()
    assert screen.frames == expected and sorted(screen.sent) == sorted(expected)
    assert [k for k in log.data if k.startswith("part/")] == []


def test_the_book_log_keeps_the_changelog_layout_of_before(partials: list[bytes]) -> None:
    """`meta` and `part/<start>:<span>/<partition>` as the worker wrote them before the book owned its log:
    a release-book changelog written by an older worker is read back."""
    log = DictBookLog()
    book = StoredBook(log, 2, window_s=60)
    book.add(_of(partials, 0))
    windows = _windows(partials)
    assert sorted(log.data) == sorted(f"part/{w}:0/0" for w in windows)
    complete, meta = book.take_complete()
    assert complete == []
    book.settle([], meta)
    assert msgspec.msgpack.decode(log.data["meta"]) == {"closed": {0: max(windows)}, "released": None}
    again = StoredBook(log, 2, window_s=60)
    again.add(_of(partials, 1))
    assert [rel.start_ms for rel, _ in again.take_complete()[0]] == windows


def test_the_worker_wires_two_agents_a_timer_a_task_and_both_tables(tmp_path: Path) -> None:
    from streams.internal_topics import BOOK_TABLE, STATE_TABLE
    from streams.worker import build_worker

    settings = Settings(data_dir=tmp_path, kafka={"partitions": 2})
    app = build_worker(settings)
    assert sorted(app.agents) == ["streams.worker.aggregate", "streams.worker.release"]
    assert len(app._app_tasks) == 2  # the idle-close timer, the manifest
    assert {STATE_TABLE, BOOK_TABLE} <= set(app.tables)
