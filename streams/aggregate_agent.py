"""The aggregate agent's work, apart from Faust: clean records into the engine, closed windows out.

`AggregateAgent` gets plain collaborators: the pure engine (cityscreen.aggregate.engine), two send
functions (the partials topic, the dead-letter topic), the worker counters (the release sink's stats
hash), and a view of the Kafka consumer (`CleanConsumer`). The Faust agent and timer in
streams/worker.py only turn events into `CleanRecord`s and call `on_batch` and `tick`.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, NamedTuple, Protocol

import msgspec

from cityscreen.aggregate.engine import Closed, Engine
from cityscreen.aggregate.late import LateCounts, late_letters, window_of
from cityscreen.aggregate.partial import PartialMessage, encode_message, final_through_ms
from cityscreen.aggregate.partition import REPEATED
from cityscreen.clean_batch import BatchError
from cityscreen.events import CLEAN_TOPICS
from cityscreen.ingest_batch import RECORD_EVENTS
from cityscreen.settings import WindowSettings
from streams.loop_phases import Phases
from streams.stall import Behind, OffsetGuard, StallWatch, polled_since

KIND_BY_TOPIC = {topic: kind for kind, topic in CLEAN_TOPICS.items()}
UNDECODABLE = "undecodable_clean_record"  # dead-letter reason: not clean events of the topic's kind

# (key, value) -> once sent, a future of the broker's acknowledgement (sent now, awaited later)
SendPartial = Callable[[bytes, bytes], Awaitable[Awaitable[object]]]
SendDead = Callable[[bytes], Awaitable[object]]  # a dead letter's value (no key)


class CleanRecord(NamedTuple):
    topic: str
    partition: int
    offset: int
    value: bytes


class CleanConsumer(Protocol):
    """What the agent needs of the Kafka consumer (streams/worker.py adapts Faust's)."""

    def assigned(self) -> list[tuple[str, int]]: ...  # (topic, partition) of every assigned partition
    def highwater(self, topic: str, partition: int) -> int | None: ...  # None before the first fetch
    def polled_ms(self, topic: str, partition: int) -> int | None: ...  # wall ms of its last fetch response
    async def seek(self, topic: str, partition: int, offset: int) -> None: ...
    def recovered(self) -> bool: ...  # the tables are restored from their changelogs
    def fetch_state(self, lagging: list[Behind]) -> str: ...  # diagnostics for the stall warning


class WorkerStats(Protocol):
    """The worker counters in Redis (streams/release.py: ReleaseSink)."""

    async def count(self, **counters: int) -> None: ...
    async def record_lag(self, lag_records: dict[str, int]) -> None: ...


class Log(Protocol):
    def warning(self, message: str) -> None: ...
    def error(self, message: str) -> None: ...


class AggregateAgent:
    """Applies batches of clean records and closes windows; one lock keeps batches and ticks apart."""

    def __init__(
        self,
        engine: Engine,
        window: WindowSettings,
        *,
        send_partial: SendPartial,
        send_dead: SendDead,
        stats: WorkerStats,
        consumer: CleanConsumer,
        log: Log,
        clock: Callable[[], float] = time.monotonic,
        wall_ms: Callable[[], float] = lambda: time.time() * 1000,
        release_busy: Callable[[], bool] = lambda: False,
    ) -> None:
        self.engine, self.window = engine, window
        self.send_partial, self.send_dead, self.stats = send_partial, send_dead, stats
        self.consumer, self.log, self.clock, self.wall_ms = consumer, log, clock, wall_ms
        self.release_busy = release_busy
        self.lock = asyncio.Lock()
        self.guard = OffsetGuard()
        self.stall = StallWatch()
        self.late_counts = LateCounts(window.window_s)
        self.unsaid: Counter[str] = Counter()  # worker counters not yet in Redis
        # closes delivered but not yet committed (snapshot and carry delta written): committed at a
        # later tick once this worker's release (if it runs it) is idle, and always before the next
        # close (a tick closes nothing while one waits; a batch that closes commits first). The
        # commit costs a census window's worker about 0.6 s of CPU; done at once it held the event loop
        # while the release agent waited to fetch the partials, and then it took CPU from the gate. A
        # crash in between closes those windows again (the release book drops the repeats).
        self.uncommitted: list[Closed] = []
        self.reported_lag: dict[str, int] = {}

    @property
    def records_per_take(self) -> int:
        """Records per batch: each clean record holds up to RECORD_EVENTS events."""
        return max(1, self.window.max_batch_events // RECORD_EVENTS)

    @property
    def tick_s(self) -> float:
        """A partition idle for idle_close_s is noticed within a quarter of it (and within flush_s): a
        coarser tick would add up to a whole tick to the last window's release at the end of a feed."""
        return min(self.window.flush_s, self.window.idle_close_s / 4)

    async def on_batch(self, records: Sequence[CleanRecord]) -> None:
        """Apply a batch, persist its deltas, dead-letter its late events, send what it closed."""
        async with self.lock:
            started, phases = self.clock(), Phases()
            late: list[dict[str, Any]] = []  # rows of late events
            applied = 0
            for record in records:
                kind = KIND_BY_TOPIC[record.topic]
                if not await self._admitted(record, kind, started):
                    continue
                try:
                    rows = self.engine.apply(record.partition, kind, record.offset, record.value)
                except (BatchError, msgspec.DecodeError, msgspec.ValidationError) as exc:
                    await self._undecodable(record, kind, exc)
                    continue
                late.extend(rows)
                applied += 1
            phases.mark("apply")
            self.engine.persist()
            phases.mark("persist")
            if late:
                await self._dead_letter(late)
            self.unsaid["records"] += applied  # into the stats hash at the next tick, not per batch
            self._take_tally()
            if self.engine.due():
                self._commit()  # a close follows: the one before it is committed first
            closed = await self._close_and_send(self.engine.close_due, phases, started)
            self._time_closes(closed)
            if (slow := phases.slow()) is not None:
                self.log.warning(f"slow batch of {len(records)} records, windows held back {slow}")

    async def tick(self) -> None:
        """The timer: write the counters, then close the windows of idle, caught-up partitions."""
        if self.unsaid:
            counts = dict(self.unsaid)
            self.unsaid.clear()
            await self.stats.count(**counts)
        if not self.consumer.recovered():
            return
        assigned = [(t, p) for t, p in self.consumer.assigned() if t in KIND_BY_TOPIC]
        # the end offsets the broker reported with the client's latest fetch of each partition (None
        # before the first): a topic is quiet only once everything written to it was applied. Not
        # `consumer.highwaters()`: that request queues behind the consumer thread's long-poll fetch and
        # took about a second per tick. A fetch is always in flight for a read-out partition, so these
        # are as fresh as an explicit request, and idleness is required on top.
        ends = {(p, KIND_BY_TOPIC[t]): self.consumer.highwater(t, p) for t, p in assigned}
        end_of = {pk: end for pk, end in ends.items() if end is not None}
        # an end counts only if the client fetched the partition after its last record (stall.py): a
        # quiet kind has had no record for idle_close_s, so a fetch within that time came after it
        now_ms, idle_s = self.wall_ms(), self.window.idle_close_s
        fresh = {
            (p, KIND_BY_TOPIC[t])
            for t, p in assigned
            if polled_since(self.consumer.polled_ms(t, p), now_ms, idle_s)
        }
        async with self.lock:
            # restore assigned partitions even if nothing new arrives, so their windows still close
            self.engine.load(p for _, p in assigned)
            unread = await self._watch_lag(end_of)

            def caught_up(partition: int, kind: str) -> bool:
                pk = (partition, kind)
                return pk in end_of and pk not in unread and pk in fresh

            if self.uncommitted and self.release_busy():
                return  # the commit waits for this worker's gate, and any further close for the commit
            started, phases = self.clock(), Phases()
            self._commit()
            phases.mark("commit")

            def close() -> list[Closed]:
                return self.engine.close_due(idle_s=idle_s, caught_up=caught_up, wall_ms=now_ms)

            await self._close_and_send(close, phases, started)
            if (slow := phases.slow()) is not None:
                self.log.warning(f"slow tick, windows held back {slow}")

    def revoked(self, partitions: Iterable[tuple[str, int]]) -> None:
        """Forget clean partitions moved to another worker (their log moved with them; their new owner
        closes again what was not committed here)."""
        gone = {p for t, p in partitions if t in KIND_BY_TOPIC}
        self.uncommitted = [c for c in self.uncommitted if c.partition not in gone]
        self.engine.drop(gone)

    def _time_closes(self, closed: list[Closed]) -> None:
        """When each close a watermark made (not idleness) was delivered, after the end of the window it
        closed through: with complete_after_end_ms, where the partials' delay after the grace goes. Not
        closes without partials: a worker's first close passes windows before its first event."""
        closed = [c for c in closed if c.partials]
        if not closed:
            return
        end_ms, now_ms = self.window.window_s * 1000, round(self.wall_ms())
        after_ms = sum(now_ms - c.closed_through_ms - end_ms for c in closed)
        self.unsaid.update(closes_delivered=len(closed), closed_after_end_ms=after_ms)

    async def _close_and_send(
        self, close: Callable[[], list[Closed]], phases: Phases, started: float
    ) -> list[Closed]:
        closed = close()
        phases.mark("close")
        await self._emit(closed)
        phases.mark("send")
        await self._emit(self.engine.speculate(self.wall_ms()), speculative=True)
        phases.mark("speculate")
        self.engine.pause_idle(self.clock() - started)
        return closed

    def _commit(self) -> None:
        """Commit the closes delivered so far, oldest first."""
        for c in self.uncommitted:
            self.engine.commit_close(c)
        self.uncommitted = []

    async def _watch_lag(self, end_of: dict[tuple[int, str], int]) -> set[tuple[int, str]]:
        """Report the lag, re-read stalled partitions; returns the (partition, kind) not read to the end."""
        applied = {pk: self.engine.applied_offset(*pk) for pk in end_of}
        behind = [(p, k, applied[p, k], end) for (p, k), end in end_of.items() if applied[p, k] + 1 < end]
        lag = {f"aggregate:{CLEAN_TOPICS[k]}:{p}": end - applied[p, k] - 1 for (p, k), end in end_of.items()}
        verdict = self.stall.check(self.clock(), sum(applied.values()), behind, self.consumer.fetch_state)
        if verdict.warning:
            self.log.warning(verdict.warning)
        await reseek(self.consumer, verdict.reseek)
        if lag != self.reported_lag:  # a write when it changes, not every tick
            await self.stats.record_lag(lag)
            self.reported_lag = lag
        return {(p, k) for p, k, _, _ in behind}

    async def _admitted(self, record: CleanRecord, kind: str, now: float) -> bool:
        """Whether to apply this record (streams/stall.py: records Faust lost are read again)."""
        topic, partition, offset = record.topic, record.partition, record.offset
        action, at = self.guard.admit(
            partition, kind, offset, self.engine.applied_offset(partition, kind), now
        )
        if action == "seek":
            self.log.warning(
                f"{topic}[{partition}]: offset {offset} arrived but {at} was never delivered; "
                f"seeking back to {at} (records the Kafka client fetched and Faust dropped)"
            )
            await self.consumer.seek(topic, partition, at)
        elif action == "hole":
            self.log.warning(
                f"{topic}[{partition}]: offsets {at} to {offset - 1} no longer exist (retention); "
                f"reading from {offset}"
            )
        return action in ("apply", "hole")

    async def _undecodable(self, record: CleanRecord, kind: str, exc: Exception) -> None:
        """A clean record that is not clean events of its topic's kind: dead-lettered, never retried."""
        self.engine.skip(record.partition, kind, record.offset)
        where = {"topic": record.topic, "partition": record.partition, "offset": record.offset}
        await self.send_dead(msgspec.json.encode({"reason": UNDECODABLE, "detail": str(exc)[:200], **where}))
        await self.stats.count(dead_lettered=1, undecodable_records=1)
        where_s = f"{record.topic}[{record.partition}]@{record.offset}"
        self.log.error(f"{where_s}: dead-lettered, not clean {kind} events: {exc}")

    async def _dead_letter(self, late: list[dict[str, Any]]) -> None:
        # the rows carry pseudonym, cell, time and demographics: only late_letters' fields leave
        window_s = self.window.window_s
        self.late_counts.add(late)
        for letter in late_letters(late, window_s):
            await self.send_dead(letter)
        await self.stats.count(late_events=len(late), dead_lettered=len(late))
        for w in sorted({window_of(int(row["ts_ms"]), window_s) for row in late}):
            events, cells = self.late_counts.summary(w)
            self.log.warning(f"window {w}: {events} late events so far, in {cells} cells (dead-lettered)")

    def _take_tally(self) -> None:
        tally = self.engine.take_tally()
        self.unsaid.update(tally)
        if tally[REPEATED]:
            self.log.warning(
                f"{tally[REPEATED]} clean events skipped as already counted: the ingest edge wrote "
                "them again (an ingest worker stopped between delivering and committing a batch)"
            )

    async def _emit(self, closed: list[Closed], *, speculative: bool = False) -> None:
        """Send the closes' partials; each close is committed (`_commit`) once its partials are known
        delivered. `speculative`: partials computed ahead of their close (`Engine.speculate`), marked so:
        the release gates them early and keeps the frames for a close that sends the same partials;
        nothing to commit."""
        # every message is sent before any delivery is awaited (one partition: the producer keeps their
        # order); each partial says only its own window is final, so a crash between two sends cannot
        # make the release agent treat the later window as complete for this partition
        delivered = []
        for c in closed:
            key = str(c.partition).encode()
            for part in c.partials:
                through = final_through_ms(part, self.window.window_s)
                msg = PartialMessage(c.partition, through, part, speculative)
                delivered.append(await self.send_partial(key, encode_message(msg)))
            progress = PartialMessage(c.partition, c.closed_through_ms, None, speculative)
            delivered.append(await self.send_partial(key, encode_message(progress)))
        for fut in delivered:
            await fut
        if not speculative:
            self.uncommitted.extend(closed)


async def reseek(consumer: CleanConsumer, lagging: list[Behind]) -> None:
    """Seek lagging clean partitions back to their first unapplied offset (streams/stall.py says why)."""
    assigned = set(consumer.assigned())
    for p, kind, applied, _ in lagging:
        topic = CLEAN_TOPICS[kind]
        if (topic, p) in assigned:  # revoked meanwhile: its new owner reads it from the committed offset
            await consumer.seek(topic, p, applied + 1)
