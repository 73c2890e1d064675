"""The release sink: the ONLY code that writes frames to Redis and to the frames topic.

It accepts nothing but an exact `WindowAggregate`, or a complete window's partials (which the gate process
merges into one), and calls the privacy gate itself, so no value can reach Redis or `city.frames.v1`
without passing `cityscreen.privacy.release`. Fused indicators are then
added from released values only. Publishing is idempotent per window: a window already in the frame
index (a replay after a crash) is not published again.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor
from typing import Any

import msgspec

from adapters import frame_store
from cityscreen import store_keys
from cityscreen.aggregates import WindowAggregate
from cityscreen.frames import Frame, encode_frame, with_span
from cityscreen.fused import fused_indicators
from cityscreen.privacy import manifest_for
from cityscreen.privacy.gate import release_kept
from cityscreen.privacy.shards import merge_frames, shard_of
from cityscreen.privacy.temporal import Memory
from cityscreen.release_book import BookLog, GateMemory, Release, merge_window
from cityscreen.settings import PrivacySettings, Settings
from streams.gate_ahead import GateAhead

_PACK = msgspec.msgpack.Encoder()
_AGGREGATE = msgspec.msgpack.Decoder(WindowAggregate)
_FRAME = msgspec.msgpack.Decoder(Frame)


Shard = tuple[int, int]  # (this shard, of how many)
Gated = tuple[list[bytes], bytes | None]  # packed frames, and the gate's packed memory of the window


def gate_packed(
    aggregate: bytes, privacy: PrivacySettings, published_ms: int, kept: bytes | None, shard: Shard = (0, 1)
) -> Gated:
    """The gate as run in the worker's gate process: a packed aggregate (and what the gate kept of the
    window before) in, packed frames (and what it keeps of this one) out; with `shard` (i, n), only the
    frames of the window's i-th of n shards (cityscreen/privacy/shards.py)."""
    return _gated(shard_of(_AGGREGATE.decode(aggregate), *shard), privacy, published_ms, kept)


def gate_partials(
    blobs: list[bytes], settings: Settings, published_ms: int, kept: bytes | None, shard: Shard = (0, 1)
) -> Gated:
    """The gate process's whole job for a complete window: merge its partials into the exact aggregate,
    gate it (or its shard), pack the frames. The event loop then only stores them."""
    return _gated(shard_of(merge_window(blobs, settings), *shard), settings.privacy, published_ms, kept)


def _gated(
    aggregate: WindowAggregate, privacy: PrivacySettings, published_ms: int, kept: bytes | None
) -> Gated:
    frames, memory = _released(aggregate, privacy, published_ms, kept)
    return [_PACK.encode(f) for f in frames], memory


def _released(
    aggregate: WindowAggregate, privacy: PrivacySettings, published_ms: int, kept: bytes | None
) -> tuple[list[Frame], bytes | None]:
    """The gate with its memory unpacked and packed again: what every path of the sink calls."""
    previous = Memory.unpack(kept)
    if previous is not None and previous.aggregate.window_start_ms >= aggregate.window_start_ms:
        previous = None  # kept from a later window (a replay): the window before it is not known here
    frames, memory = release_kept(aggregate, privacy, published_ms=published_ms, previous=previous)
    return frames, None if memory is None else memory.pack()


Gate = tuple[list[Frame] | None, bytes | None]  # a window's frames (None: published already), memory
SendFrame = Callable[[bytes, bytes], Awaitable[None]]  # (key, value) -> delivered to the frames topic


# what `ReleaseSink.release` takes: an exact aggregate, or a complete window's partials (ReleaseBook)
Releasable = WindowAggregate | tuple[Release, Sequence[bytes]]


def warm_gate() -> int:
    """Run once in each gate process at worker start: unpickling this function imports the gate, so
    the seconds of imports (numpy, the auditor) do not delay the first window released."""
    return os.getpid()


def _kept_start(kept: bytes | None) -> int:
    """The start of the window a packed memory was kept from (-1: none)."""
    memory = Memory.unpack(kept)
    return -1 if memory is None else memory.aggregate.window_start_ms


class ReleaseSink:
    def __init__(
        self,
        redis: Any,  # redis.asyncio.Redis
        send_frame: SendFrame,
        settings: Settings,
        clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
        gate_pool: Executor | None = None,
        kept_log: BookLog | None = None,
    ) -> None:
        self.redis, self.send_frame, self.settings, self.clock_ms = redis, send_frame, settings, clock_ms
        # what the gate kept of the last window released per span (privacy across time, temporal.py)
        self.memory = GateMemory(kept_log)
        self._last: dict[int, asyncio.Future[Gate]] = {}  # the latest gating per span, across batches
        self._chained = settings.chained_gate
        # the gate is CPU-bound (seconds per window): in a process pool it runs on the other core while
        # the worker's event loop keeps aggregating; the sink still calls it, so nothing bypasses it
        self.gate_pool = gate_pool
        self.in_flight = 0  # calls of `release` under way (the aggregate agent commits when none is)
        # a window's blocks are gated in as many shards as there are gate processes, at once (a window
        # gated across time needs the whole window before it: one job)
        self.shards = 1 if gate_pool is None or self._chained else settings.privacy.gate_processes
        # windows gated from speculative partials, ahead of their close (streams/gate_ahead.py)
        self.ahead = GateAhead(functools.partial(self._gate, kept=None), self.count)

    def speculate(self, windows: Sequence[tuple[Release, Sequence[bytes]]]) -> None:
        """Start gating windows from speculative partials (streams/gate_ahead.py). Nothing is stored from
        them unless the complete window's partials are the same bytes. Not with the chained gate: a
        window's gate then needs the one before it."""
        if not self._chained:
            self.ahead.start(windows)

    async def _gate(
        self, aggregate: WindowAggregate | list[bytes], kept: bytes | None
    ) -> tuple[list[Frame], bytes | None]:
        published_ms = self.clock_ms()
        if isinstance(aggregate, list):  # a window's partials: merged where they are gated
            job = functools.partial(gate_partials, aggregate, self.settings, published_ms, kept)
        elif self.gate_pool is None:  # in this process: no need to pack the frames
            return _released(aggregate, self.settings.privacy, published_ms, kept)
        else:
            # msgpack both ways: pickling a dense window's nested structs costs the loop about 25x more
            job = functools.partial(
                gate_packed, _PACK.encode(aggregate), self.settings.privacy, published_ms, kept
            )
        pool, n = self.gate_pool, self.shards
        if pool is None:
            packed, memory = job()
            return [_FRAME.decode(f) for f in packed], memory
        loop = asyncio.get_running_loop()
        gated = await asyncio.gather(*(loop.run_in_executor(pool, job, (i, n)) for i in range(n)))
        parts = [[_FRAME.decode(f) for f in packed] for packed, _ in gated]
        return (parts[0] if n == 1 else merge_frames(parts)), gated[0][1]

    def forget(self) -> None:
        """The release partition moved: read the gate's memory from the log again when next needed."""
        self.memory.forget()
        self._last.clear()
        self.ahead.clear()

    async def publish_manifest(self) -> None:
        manifest = manifest_for(self.settings)
        await self.redis.set(store_keys.MANIFEST_KEY, json.dumps(msgspec.to_builtins(manifest)))

    def release_of(self, aggregate: WindowAggregate) -> Release:
        span_s = aggregate.window_s if aggregate.window_s != self.settings.window.window_s else 0
        return Release(aggregate.window_start_ms, span_s)

    async def is_published(self, window_start_ms: int, span_s: int = 0) -> bool:
        # the coarsest frame is written last, so its presence means the whole window was published
        coarsest = min(self.settings.window.resolutions)
        index = store_keys.frame_index_key(coarsest, span_s)
        return await self.redis.zscore(index, str(window_start_ms)) is not None

    async def release(
        self, windows: Sequence[Releasable], *, after: Awaitable[object] | None = None
    ) -> dict[Release, list[Frame]]:
        """The one entry point of the release path: gate complete windows, then store and announce their
        frames, each as its gate finishes: the windows of one length in the order given (window order:
        each frame's fused indicators read the previous window's frame from Redis). A base window does
        not wait for the longer window that ends with it: its frame is stored again once that one is.

        A window is an exact `WindowAggregate`, or a complete window's partials as
        `ReleaseBook.take_complete` returns them (the gate process merges them into the exact
        aggregate). Gating starts at once, each window in the gate pool; storing waits for `after`
        (the previous batch's store). A window already published (a replay after a crash) is neither
        gated nor stored again. Returns the frames stored, by release.

        With `privacy.across_time`, windows of one span are gated one after the other: each needs what
        the gate kept of the one before. That memory is kept once its window is stored."""
        jobs = [self._job(w) for w in windows]  # all checked before any is gated
        self.in_flight += 1
        try:
            return await self._release(jobs, after)
        finally:
            self.in_flight -= 1

    async def _release(
        self, jobs: list[tuple[Release, WindowAggregate | list[bytes]]], after: Awaitable[object] | None
    ) -> dict[Release, list[Frame]]:
        # base windows are gated first (the gate pool takes jobs in order): a frame waits for no longer
        # window's gate, which is seconds of a 15-minute window at peak (`_next_gated`, `_store`)
        queues: dict[int, deque[tuple[Release, asyncio.Future[Gate]]]] = {}
        spans_due = Counter(self._end_ms(rel) for rel, _ in jobs if rel.span_s)  # end ms -> spans not stored
        for rel, w in sorted(jobs, key=lambda job: job[0].span_s != 0):
            with_span = not rel.span_s and spans_due[self._end_ms(rel)] > 0
            gating = asyncio.ensure_future(self._gate_new(rel, w, self._last.get(rel.span_s), with_span))
            if self._chained:  # otherwise every window is gated at once, in parallel
                self._last[rel.span_s] = gating
            queues.setdefault(rel.span_s, deque()).append((rel, gating))
        if after is not None:
            await after
        stored: dict[Release, list[Frame]] = {}
        early: dict[int, tuple[Release, list[Frame]]] = {}  # end ms -> base frames stored before a span
        while queues:
            rel, gated = await self._next_gated(queues)
            frames, memory = await gated
            end_ms = self._end_ms(rel)
            if rel.span_s:
                spans_due[end_ms] -= 1
                base = early.pop(end_ms, None) if not spans_due[end_ms] else None
                if frames is not None:
                    stored[rel] = await self._store_span(frames)
                if base is not None:  # again, with the span's layers; counted published only now
                    stored[base[0]] = await self._store(base[1])
            elif frames is not None:
                ending = spans_due[end_ms] > 0
                if ending:
                    early[end_ms] = (rel, frames)
                stored[rel] = await self._store(frames, final=not ending)
            if memory is not None and memory is not self.memory.get(rel.span_s):
                self.memory.put(rel.span_s, memory)
        return stored

    def _end_ms(self, rel: Release) -> int:
        return rel.start_ms + (rel.span_s or self.settings.window.window_s) * 1000

    async def _next_gated(
        self, queues: dict[int, deque[tuple[Release, asyncio.Future[Gate]]]]
    ) -> tuple[Release, asyncio.Future[Gate]]:
        """The next window to store, taken off its queue: each span's windows in order, a base window
        once gated even before the longer window that ends with it (stored again when that one is), but
        never before one that ended earlier (its frame shows that window's layers)."""
        while True:
            heads = [queue[0] for queue in queues.values()]
            longer_end = min((self._end_ms(r) for r, _ in heads if r.span_s), default=None)
            ready = [
                (r, g) for r, g in heads if r.span_s or longer_end is None or self._end_ms(r) <= longer_end
            ]
            done = [head for head in ready if head[1].done()]
            if done:
                rel, gating = min(done, key=lambda head: head[0].span_s)  # a base window first
                queues[rel.span_s].popleft()
                if not queues[rel.span_s]:
                    del queues[rel.span_s]
                return rel, gating
            await asyncio.wait([g for _, g in ready], return_when=asyncio.FIRST_COMPLETED)

    def _job(self, window: Releasable) -> tuple[Release, WindowAggregate | list[bytes]]:
        if isinstance(window, WindowAggregate):
            return self.release_of(window), window
        if isinstance(window, tuple) and len(window) == 2 and isinstance(window[0], Release):
            return window[0], list(window[1])
        raise TypeError(
            "the release sink accepts only a WindowAggregate or a complete window's partials (it applies "
            f"the gate itself), not {type(window).__name__}: release what the engine or ReleaseBook gave"
        )

    def _order(self, aggregate: WindowAggregate) -> tuple[int, int]:
        self._job(aggregate)  # refuses anything else before it is sorted
        return aggregate.window_end_ms, -aggregate.window_s

    async def publish(self, aggregate: WindowAggregate) -> list[Frame]:
        """Gate, then store and announce every resolution's frame; returns what was published."""
        return (await self.publish_all([aggregate]))[0]

    async def publish_all(self, aggregates: list[WindowAggregate]) -> list[list[Frame]]:
        """`release` of exact aggregates in any order: sorted by the base window that completes each, a
        longer window before the base window of its end. Returns each one's frames in that order."""
        ordered = sorted(aggregates, key=self._order)
        stored = await self.release(ordered)
        return [stored.get(self.release_of(a), []) for a in ordered]

    async def _gate_new(
        self,
        rel: Release,
        aggregate: WindowAggregate | list[bytes],
        before: asyncio.Future[Gate] | None,
        with_span: bool = False,
    ) -> Gate:
        """The window's frames and the gate's memory of it (None, None: published already). `before`:
        the latest gating of this span before it (this batch or an earlier one), whose memory it uses.
        `with_span`: a base window released with a longer window ending with it."""
        complete_ms = self.clock_ms()
        kept = self.memory.get(rel.span_s)
        if before is not None:
            try:
                kept = (await before)[1]
            except Exception:  # that batch's own await raises it; go on from the log
                kept = self.memory.get(rel.span_s)
        published = await self.is_published(rel.start_ms, rel.span_s)
        if published and not await self._early(rel, with_span):
            if not self._chained or _kept_start(kept) >= rel.start_ms:
                return None, kept  # a replay: the next window goes on from the memory kept before
            # published, but its memory was lost with a crash: gated again (and not stored twice), so
            # the next window is gated as it would have been
            return None, (await self._gate(aggregate, kept))[1]
        # wall time from asking for the gate to having its frames, waits for a free gate process included:
        # what an operator sees delay a window (cityscreen_gate_seconds_total, deploy/observability)
        started_s = time.monotonic()
        gate_now = functools.partial(self._gate, aggregate, kept)
        (frames, memory), ahead = await self.ahead.take_or_gate(rel, aggregate, gate_now)
        gate_ms = round((time.monotonic() - started_s) * 1000)
        # a regated window (`_early`) was counted complete when first gated
        completed = {} if published else self._complete_counts(rel, complete_ms)
        await self.count(gate_ms=gate_ms, windows_gated=1, **completed, **ahead)
        return frames, memory

    async def _early(self, rel: Release, with_span: bool) -> bool:
        """A published base window stored before the longer window ending with it, which is not: a crash
        came between. Gated again (the same frames: the gate is deterministic) to be stored with it.
        Not across time: a window gated again without its memory could hide other values."""
        if not with_span or self._chained:
            return False
        w, end_ms = self.settings.window, self._end_ms(rel)
        spans = [s for s in w.spans_s if s != w.window_s and end_ms % (s * 1000) == 0]
        return not all([await self.is_published(end_ms - s * 1000, s) for s in spans])

    async def _store_span(self, frames: list[Frame]) -> list[Frame]:
        """A longer window's frames: kept under their own keys; base-window frames show them (`_store`)."""
        history_s = self.settings.redis.history_s
        for frame in frames:
            frame.published_ms = self.clock_ms()
            body = encode_frame(frame)
            span_s, start = frame.window_s, frame.window_start_ms
            await self.send_frame(f"{frame.res}:{start}:{span_s}".encode(), body)
            await frame_store.put_released_span(self.redis, frame, body, history_s=history_s)
        await self.count(span_windows_published=1)
        return frames

    async def _with_spans(self, frame: Frame, *, span_pending: bool) -> Frame:
        """The frame with the layers of each longer window that ended at or before its end: the latest
        one. `span_pending`: a window ending with this one is still in its gate; until it is stored (and
        this frame with it, `_store`), the frame shows the one before. Otherwise a window that ended
        with it and is not stored had no rows, and the frame shows none of its layers."""
        w = self.settings.window
        end_ms = frame.window_end_ms
        for span_s in (s for s in w.spans_s if s != w.window_s):
            start = end_ms - end_ms % (span_s * 1000) - span_s * 1000
            span = await frame_store.frame_at(self.redis, frame.res, start, span_s)
            if span is None and span_pending and end_ms % (span_s * 1000) == 0:
                span = await frame_store.frame_at(self.redis, frame.res, start - span_s * 1000, span_s)
            if span is not None:
                frame = with_span(frame, span)
        return frame

    def _complete_counts(self, rel: Release, complete_ms: int) -> dict[str, int]:
        """How long after its end a base window came complete to the release (its partials all in),
        counted when first gated (not again in a replay): with gate_ms and store_ms, where a final
        frame's delay is spent (bench live's stats)."""
        if rel.span_s:
            return {}
        after_ms = complete_ms - rel.start_ms - self.settings.window.window_s * 1000
        return {"complete_after_end_ms": max(0, after_ms), "windows_complete": 1}

    async def _store(self, frames: list[Frame], *, final: bool = True) -> list[Frame]:
        """Store and announce a base window's frames as gated, with the longer windows' layers and the
        fused indicators added. Not `final`: a longer window ending with it is still in its gate; once
        it is stored, so are these frames again, with its layers (the same key, later: the screen, Redis
        and the topic's readers keep the newest), and only then is the window counted published."""
        started_s = time.monotonic()
        history_s = self.settings.redis.history_s
        out = []
        for frame in frames:
            frame = await self._with_spans(frame, span_pending=not final)
            out.append(frame)
            frame.fused = fused_indicators(frame, await self._previous(frame))
            # stamped once gated and complete: published_ms -> receipt is delivery delay, not gate time
            frame.published_ms = self.clock_ms()
            body = encode_frame(frame)
            await self.send_frame(f"{frame.res}:{frame.window_start_ms}".encode(), body)
            await frame_store.put_released(self.redis, frame, body, history_s=history_s)
        if final:
            await self.count(windows_published=1, store_ms=round((time.monotonic() - started_s) * 1000))
        return out

    async def count(self, **counters: int) -> None:
        """Worker counters in the stats hash (events, late, dead-lettered, windows)."""
        pipe = self.redis.pipeline(transaction=False)
        for name, n in counters.items():
            if n:
                pipe.hincrby(store_keys.STATS_KEY, name, n)
        await pipe.execute()

    async def record_lag(self, lag_records: dict[str, int]) -> None:
        """Records each clean partition's consumer is behind its end offset, for the gateway's /metrics."""
        if lag_records:
            await self.redis.hset(store_keys.LAG_KEY, mapping=lag_records)

    async def _previous(self, frame: Frame) -> Frame | None:
        previous_start_ms = frame.window_start_ms - frame.window_s * 1000
        return await frame_store.frame_at(self.redis, frame.res, previous_start_ms)
