"""Fan-out: one Redis subscription per gateway process, copied into every client's bounded queue.

Each announced frame is read from Redis once and encoded once per distinct `View`; clients get the
same string object. Putting into a queue never waits, so a slow client cannot slow the others.
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
from cityscreen.frames import Frame
from services.gateway import store
from services.gateway.conflate import LatestQueue
from services.gateway.view import View, encode_message, view_frame
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

    def offer(self, message: Message, now_s: float) -> None:
        """Write a frame at once when the socket is idle and due, else queue it (latest wins).

        Writing here skips a task wake-up per client per frame, which is most of the fan-out's cost.
        """
        if self.write is not None and not self.busy and not len(self.queue) and now_s >= self.next_frame_s:
            try:
                sent = self.write(message.framed)
            except ConnectionResetError:
                return  # closing: its handler cleans up
            if sent:
                self.sent += 1
                self.last_sent_s = now_s
                self.next_frame_s = now_s + self.min_interval_s
            else:
                self.queue.dropped += 1
            return
        self.queue.put(message)


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

    async def run(self) -> None:
        """Listen to the notify channel until cancelled; reconnects with a short backoff."""
        backoff_s = 0.2
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(store_keys.NOTIFY_CHANNEL)
                backoff_s = 0.2
                await self.resync()
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        await self.handle_notify(message["data"])
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
