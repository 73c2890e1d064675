"""Fan-out: one Redis subscription per gateway process, copied into every client's bounded queue.

Each announced frame is read from Redis once and encoded once per distinct `View`; clients get the
same string object. Putting into a queue never waits, so a slow client cannot slow the others.
The now layer's provisional ticks (`NowFrame`, pane "early") come on their own channel and go the same
way, to views that show people present, through each queue's side slot (see `Client.offer_now`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import redis.asyncio as aioredis

from cityscreen import store_keys
from cityscreen.frames import Frame, NowFrame
from services.gateway import store
from services.gateway.conflate import LatestQueue
from services.gateway.metrics import GatewayMetrics
from services.gateway.view import View, encode_message, shows_now, view_frame, view_now
from services.gateway.wire import Message

log = logging.getLogger(__name__)

# Frames are paced to at most update_hz, with 10% slack: a source publishing at exactly update_hz must
# not be held back a period by jitter, which would ratchet every later frame's delay upwards.
PACING_SLACK = 0.9


class Cancellable(Protocol):
    def cancel(self) -> None: ...


@dataclass(eq=False)
class Client:
    """One connected subscriber: its view (None until it subscribes) and its latest-wins queue."""

    queue: LatestQueue[Message]
    view: View | None = None
    sent: int = 0
    last_sent_s: float = field(default_factory=time.monotonic)
    next_frame_s: float = 0.0  # pacing: no frame before this (monotonic seconds)
    min_interval_s: float = 0.0
    busy: bool = False  # the sender task holds a message it has not finished sending
    write: Callable[[bytes], bool] | None = None  # the pre-framed fast path, when the server allows it
    now_tick_ms: int = -1  # the newest now tick offered for the current view: never step back

    def offer(self, message: Message, now_s: float) -> None:
        """Write a frame at once when the socket is idle and due, else queue it (latest wins).

        Writing here skips a task wake-up per client per frame, which is most of the fan-out's cost.
        """
        if self.write is not None and not self.busy and not len(self.queue) and now_s >= self.next_frame_s:
            if self._write(message, now_s):
                self.next_frame_s = now_s + self.min_interval_s
            return
        self.queue.put(message)

    def _write(self, message: Message, now_s: float) -> bool:
        """The fast path's write (the caller checked the socket is idle); True when it went out."""
        assert self.write is not None
        try:
            sent = self.write(message.framed)
        except ConnectionResetError:
            return False  # closing: its handler cleans up
        if sent:
            self.sent += 1
            self.last_sent_s = now_s
        else:
            self.queue.dropped += 1
        return sent

    def offer_now(self, message: Message, tick_ms: int, now_s: float, *, again: bool = False) -> None:
        """Write a now frame at once when the socket is idle, else put it in the queue's side slot.

        Now frames get a slot of their own, latest wins among them: a burst of ticks replaces only the
        tick before and never pushes a final frame out of the queue, and the side slot goes out after
        whatever is queued. They are not paced (the hub fans out at most one per tick); frames are.
        A tick older than the last offered is ignored, and so is the same tick unless `again` (the one
        that follows a snapshot: a live tick fanned out while the snapshot was read went out before it).
        """
        if tick_ms < self.now_tick_ms or (tick_ms == self.now_tick_ms and not again):
            return  # never step a client back in time
        self.now_tick_ms = tick_ms
        if self.write is None or self.busy or len(self.queue):
            self.queue.put_side(message)
            return
        self._write(message, now_s)

    def clear(self) -> None:
        """Forget what was queued for the previous view (a new subscription starts afresh)."""
        self.queue.clear()
        self.now_tick_ms = -1


@dataclass(eq=False)
class Hub:
    redis: aioredis.Redis
    clients: set[Client] = field(default_factory=set)
    frames_in: int = 0
    encodes: int = 0
    latest: dict[int, Frame] = field(default_factory=dict)  # newest delivered frame per res
    # clients by the resolution they watch: a notify for a resolution nobody watches costs nothing,
    # and a frame visits only its watchers rather than every socket
    watchers: dict[int, set[Client]] = field(default_factory=dict)
    # pacing for everyone at once: a frame due sooner than this after the last fan-out at its resolution
    # waits on one timer (latest wins), instead of thousands of per-client queues and sleeping tasks
    min_interval_s: float = 0.0
    conflated: int = 0  # frames replaced by a newer one while waiting for their turn
    _next_fanout_s: dict[int, float] = field(default_factory=dict)
    _pending: dict[int, Frame] = field(default_factory=dict)
    _timers: dict[int, Cancellable] = field(default_factory=dict)
    _last_published: dict[int, tuple[int, int]] = field(default_factory=dict)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    # the now layer: newest tick per res (a subscriber's current now), and the newest fanned out per res
    latest_now: dict[int, NowFrame] = field(default_factory=dict)
    now_in: int = 0
    _last_now_tick_ms: dict[int, int] = field(default_factory=dict)
    metrics: GatewayMetrics | None = None
    # the clock and the timer, injectable so that tests step time instead of sleeping
    clock_s: Callable[[], float] = time.monotonic
    call_later: Callable[[float, Callable[[int], None], int], Cancellable] | None = None

    async def snapshot(self, res: int) -> Frame | None:
        """The newest frame at `res`: the one last fanned out, else Redis (first subscriber at `res`)."""
        if res in self.latest:
            return self.latest[res]
        frame = await store.latest_frame(self.redis, res)
        if frame is not None and res not in self.latest:
            self.latest[res] = frame
            self._last_published[res] = (frame.window_start_ms, frame.published_ms)
        return frame

    def add(self, client: Client) -> None:
        self.clients.add(client)
        if client.view is not None:
            self.watchers.setdefault(client.view.res, set()).add(client)

    def watch(self, client: Client, view: View) -> None:
        """Point `client` at `view` (a new subscription replaces the old one)."""
        if client.view is not None:
            self.watchers.get(client.view.res, set()).discard(client)
        client.view = view
        if client in self.clients:
            self.watchers.setdefault(view.res, set()).add(client)

    def remove(self, client: Client) -> None:
        self.clients.discard(client)
        if client.view is not None:
            self.watchers.get(client.view.res, set()).discard(client)

    def deliver(self, frame: Frame) -> int:
        """Offer `frame` to every client watching its resolution; returns how many got it now (0 when the
        frame is older than the last one, or waits for its turn under `min_interval_s`)."""
        stamp = (frame.window_start_ms, frame.published_ms)
        if self._last_published.get(frame.res, (-1, -1)) >= stamp:
            return 0  # an older or repeated announcement: never step a client back in time
        self._last_published[frame.res] = stamp
        self.latest[frame.res] = frame
        self.frames_in += 1
        now_s = self.clock_s()
        due_s = self._next_fanout_s.get(frame.res, 0.0)
        if now_s < due_s:
            if frame.res in self._pending:
                self.conflated += 1
            self._pending[frame.res] = frame
            if frame.res not in self._timers:
                later = self.call_later or asyncio.get_running_loop().call_later
                self._timers[frame.res] = later(due_s - now_s, self._flush, frame.res)
            return 0
        return self._fan_out(frame, now_s)

    def _flush(self, res: int) -> None:
        self._timers.pop(res, None)
        frame = self._pending.pop(res, None)
        if frame is not None:
            self._fan_out(frame, self.clock_s())

    def _fan_out(self, frame: Frame, now_s: float) -> int:
        """Encode `frame` once per view among its watchers and offer the same bytes to each of them."""
        if self.min_interval_s:
            self._next_fanout_s[frame.res] = now_s + self.min_interval_s
        watching = self.watchers.get(frame.res, set())
        encoded: dict[View, Message] = {}
        for c in watching:
            view = c.view
            assert view is not None  # only subscribed clients are indexed
            message = encoded.get(view)
            if message is None:
                message = encoded[view] = Message(encode_message("frame", view_frame(frame, view)))
            c.offer(message, now_s)
        self.encodes += len(encoded)
        return len(watching)

    async def handle_notify(self, payload: bytes | str) -> None:
        try:
            res = int(json.loads(payload)["res"])
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring malformed notify payload %r", payload)
            return
        if not self.watchers.get(res):
            self.latest.pop(res, None)  # nobody watches: the cached snapshot would go stale
            return
        frame = await store.latest_frame(self.redis, res)
        if frame is not None:
            self.deliver(frame)

    async def now_snapshot(self, res: int) -> NowFrame | None:
        """The newest now frame at `res`: the cached one, else Redis. A read here does not count as
        delivered: watchers still waiting for this tick get it from its notice."""
        if res in self.latest_now:
            return self.latest_now[res]
        now = await store.latest_now(self.redis, res)
        if now is not None:
            self._cache_now(now)
        return self.latest_now.get(res, now)  # a newer tick may have been fanned out during the read

    def _cache_now(self, now: NowFrame) -> None:
        cached = self.latest_now.get(now.res)
        if cached is None or cached.tick_ms < now.tick_ms:
            self.latest_now[now.res] = now

    def deliver_now(self, now: NowFrame) -> int:
        """Offer a now frame to every watcher of its resolution whose view shows people present, encoded
        once per view; returns how many were offered it (0 for a tick not newer than the last one)."""
        if now.tick_ms <= self._last_now_tick_ms.get(now.res, -1):
            return 0  # an older or repeated tick: never step a client back in time
        self._last_now_tick_ms[now.res] = now.tick_ms
        self._cache_now(now)
        self.now_in += 1
        if self.metrics is not None:
            self.metrics.ws_now_frames.inc()
        now_s = self.clock_s()
        encoded: dict[View, Message] = {}
        offered = 0
        for c in self.watchers.get(now.res, set()):
            view = c.view
            assert view is not None  # only subscribed clients are indexed
            if not shows_now(view):
                continue
            message = encoded.get(view)
            if message is None:
                message = encoded[view] = now_message(now, view)
            c.offer_now(message, now.tick_ms, now_s)
            offered += 1
        self.encodes += len(encoded)
        return offered

    async def handle_now_notify(self, payload: bytes | str) -> None:
        try:
            notice = json.loads(payload)
            res, tick_ms = int(notice["res"]), int(notice["tick_ms"])
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring malformed now notify payload %r", payload)
            return
        if not self.watchers.get(res):
            self.latest_now.pop(res, None)  # nobody watches: the cached tick would go stale
            return
        if tick_ms <= self._last_now_tick_ms.get(res, -1):
            return  # delivered already (an earlier notice's read found it), or older: skip the read
        now = await store.latest_now(self.redis, res)
        if now is not None:
            self.deliver_now(now)

    async def offer_current_now(self, client: Client) -> None:
        """After a subscribe's `snapshot` (or `waiting`) is queued: its view's current now frame, if any."""
        view = client.view
        if view is None or not shows_now(view):
            return
        now = await self.now_snapshot(view.res)
        if now is not None and client.view is view:  # not resubscribed while Redis answered
            client.offer_now(now_message(now, view), now.tick_ms, self.clock_s(), again=True)

    async def on_notice(self, channel: bytes | str, payload: bytes | str) -> None:
        name = channel.decode() if isinstance(channel, bytes) else channel
        if name == store_keys.NOW_NOTIFY_CHANNEL:
            await self.handle_now_notify(payload)
        else:
            await self.handle_notify(payload)

    async def run(self) -> None:
        """Listen to the notify channels until cancelled; reconnects with a short backoff."""
        backoff_s = 0.2
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(store_keys.NOTIFY_CHANNEL, store_keys.NOW_NOTIFY_CHANNEL)
                backoff_s = 0.2
                await self.resync()
                await self.resync_now()
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        await self.on_notice(message["channel"], message["data"])
            except (ConnectionError, OSError, aioredis.ConnectionError) as exc:
                log.warning("redis subscription lost (%s); retrying in %.1fs", exc, backoff_s)
                await asyncio.sleep(backoff_s)
                backoff_s = min(backoff_s * 2, 5.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    async def resync(self) -> None:
        """After (re)subscribing: announcements made while the subscription was down (Redis restarted)
        are lost, so watchers get Redis's newest frame now (`deliver` skips one they already have), and
        cached snapshots nobody watches are dropped, so the next subscriber reads Redis, not a stale one."""
        for res in list(self.latest):
            if not self.watchers.get(res):
                self.latest.pop(res, None)
        for res in [r for r, watching in self.watchers.items() if watching]:
            frame = await store.latest_frame(self.redis, res)
            if frame is not None:
                self.deliver(frame)

    async def resync_now(self) -> None:
        """`resync` for the now layer's ticks."""
        for res in [r for r in self.latest_now if not self.watchers.get(r)]:
            self.latest_now.pop(res, None)
        for res in [r for r, watching in self.watchers.items() if watching]:
            now = await store.latest_now(self.redis, res)
            if now is not None:
                self.deliver_now(now)

    def beat(self, heartbeat_s: float) -> int:
        """Queue a heartbeat for every client that has been sent nothing for `heartbeat_s`."""
        now_s = self.clock_s()
        idle = [c for c in self.clients if now_s - c.last_sent_s >= heartbeat_s and not len(c.queue)]
        if idle:
            beat = Message(encode_message("heartbeat", {"ts_ms": now_ms()}))
            for c in idle:
                c.queue.put(beat)
        return len(idle)

    async def run_heartbeats(self, heartbeat_s: float) -> None:
        # one timer for all clients: a per-client timeout on every queue wait costs a task per message
        while True:
            await asyncio.sleep(heartbeat_s / 4)
            self.beat(heartbeat_s)

    def start(self, heartbeat_s: float) -> None:
        self._tasks = [
            asyncio.create_task(self.run(), name="gateway-hub"),
            asyncio.create_task(self.run_heartbeats(heartbeat_s), name="gateway-heartbeats"),
        ]

    async def stop(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


def now_ms() -> int:
    return int(time.time() * 1000)


def now_message(now: NowFrame, view: View) -> Message:
    return Message(encode_message("now", view_now(now, view)))
