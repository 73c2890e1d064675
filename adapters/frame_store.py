"""Released frames in Redis, in the layout of `cityscreen.store_keys`: the one place that writes and reads it.

Writers: only the release sink (streams/release.py) calls `put_released` and `put_released_span`, after
the gate; only the now worker (streams/now_agent.py) calls `put_now`, after the continual-release
mechanism (cityscreen/privacy/now_layer.py); the gateway tests store hand-made frames with them.
test_aggregate_release_only_via_gate.py holds that rule. Readers: the gateway, the sink (a frame's
previous window, the latest longer window) and the now worker (the final frames it anchors on).
"""

from __future__ import annotations

import json
from typing import cast

import redis.asyncio as aioredis

from cityscreen import store_keys
from cityscreen.frames import Frame, NowFrame, decode_frame, decode_now


async def put_released(redis: aioredis.Redis, frame: Frame, body: bytes, *, history_s: int) -> None:
    """Store a gated frame (`body` is its JSON): kept `history_s`, indexed by window, newest-wins as the
    latest, then announced on the notify channel once it can be read."""
    index = store_keys.frame_index_key(frame.res)
    oldest_ms = frame.window_start_ms - history_s * 1000
    pipe = redis.pipeline(transaction=False)
    pipe.set(store_keys.frame_key(frame.res, frame.window_start_ms), body, ex=history_s)
    pipe.zadd(index, {str(frame.window_start_ms): frame.window_start_ms})
    pipe.zremrangebyscore(index, "-inf", oldest_ms)
    await pipe.execute()
    latest = store_keys.latest_frame_key(frame.res)
    current = _frame(await redis.get(latest))
    if current is None or current.window_start_ms <= frame.window_start_ms:
        await redis.set(latest, body)  # a late replay of an old window never steps the screen back
    notice = json.dumps({"res": frame.res, "window_start_ms": frame.window_start_ms})
    await redis.publish(store_keys.NOTIFY_CHANNEL, notice)


async def put_released_span(redis: aioredis.Redis, frame: Frame, body: bytes, *, history_s: int) -> None:
    """Store a gated frame of a longer window (`frame.window_s`, e.g. 15-minute spend) under its own keys;
    base-window frames carry its layers, so it is not announced on its own."""
    span_s, start = frame.window_s, frame.window_start_ms
    index = store_keys.frame_index_key(frame.res, span_s)
    pipe = redis.pipeline(transaction=False)
    pipe.set(store_keys.frame_key(frame.res, start, span_s), body, ex=history_s)
    pipe.zadd(index, {str(start): start})
    pipe.zremrangebyscore(index, "-inf", start - history_s * 1000)
    pipe.set(store_keys.latest_frame_key(frame.res, span_s), body)
    await pipe.execute()


def _frame(data: bytes | str | None) -> Frame | None:
    if not data:
        return None
    return decode_frame(data if isinstance(data, bytes) else data.encode())


async def latest_frame(redis: aioredis.Redis, res: int) -> Frame | None:
    return _frame(await redis.get(store_keys.latest_frame_key(res)))


async def frame_at(redis: aioredis.Redis, res: int, window_start_ms: int, span_s: int = 0) -> Frame | None:
    """The frame of one window at `res`: a base window, or with `span_s` a longer window's own frame."""
    return _frame(await redis.get(store_keys.frame_key(res, window_start_ms, span_s)))


async def recent_windows(redis: aioredis.Redis, res: int, count: int) -> list[int]:
    """The newest `count` window starts still kept at `res`, oldest first."""
    members = await redis.zrevrange(store_keys.frame_index_key(res), 0, max(count, 1) - 1)
    return sorted(int(cast(bytes, m)) for m in members)


async def recent_frames(redis: aioredis.Redis, res: int, count: int) -> list[Frame]:
    """The newest `count` frames at `res` (expired ones skipped), oldest first."""
    starts = await recent_windows(redis, res, count)
    if not starts:
        return []
    blobs = await redis.mget([store_keys.frame_key(res, s) for s in starts])
    return [f for f in map(_frame, blobs) if f is not None]


async def put_now(redis: aioredis.Redis, frame: NowFrame, body: bytes) -> None:
    """Store the now layer's newest tick at `frame.res` (`body` is its JSON; each tick overwrites the
    last, never steps back), then announce it on the now channel."""
    key = store_keys.now_key(frame.res)
    current = await latest_now(redis, frame.res)
    if current is not None and current.tick_ms > frame.tick_ms:
        return
    await redis.set(key, body)
    notice = json.dumps({"res": frame.res, "tick_ms": frame.tick_ms})
    await redis.publish(store_keys.NOW_NOTIFY_CHANNEL, notice)


async def latest_now(redis: aioredis.Redis, res: int) -> NowFrame | None:
    """The now layer's newest tick at `res`, or None before its first release."""
    data = await redis.get(store_keys.now_key(res))
    if not data:
        return None
    return decode_now(data if isinstance(data, bytes) else data.encode())
