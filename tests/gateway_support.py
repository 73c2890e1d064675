"""Test-only upstream for the gateway's read side: store hand-made frames in the sink's Redis layout.

Product code has no such path (only streams/release.py writes frames, after the gate); the gateway
tests need frames with known values to check what the gateway reads, filters and pushes.
"""

from __future__ import annotations

import json

import msgspec
import redis.asyncio as aioredis

from cityscreen import store_keys
from cityscreen.frames import Frame


async def write_frame(redis: aioredis.Redis, frame: Frame, *, history_s: int) -> None:
    body = msgspec.json.encode(frame)
    pipe = redis.pipeline(transaction=False)
    pipe.set(store_keys.latest_frame_key(frame.res), body)
    pipe.set(store_keys.frame_key(frame.res, frame.window_start_ms), body, ex=history_s)
    pipe.zadd(store_keys.frame_index_key(frame.res), {str(frame.window_start_ms): frame.window_start_ms})
    pipe.publish(
        store_keys.NOTIFY_CHANNEL,
        json.dumps({"res": frame.res, "window_start_ms": frame.window_start_ms}),
    )
    await pipe.execute()
