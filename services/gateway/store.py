"""Reads of released frames from Redis, in the layout of `cityscreen.store_keys`.

Read-only: only the release sink (streams/release.py) writes frames, after the gate."""

from __future__ import annotations

import json
from typing import Any, cast

import msgspec
import redis.asyncio as aioredis

from cityscreen import store_keys
from cityscreen.frames import Frame, decode_frame
from cityscreen.privacy import build_manifest
from cityscreen.settings import Settings


def _frame(data: bytes | str | None) -> Frame | None:
    if not data:
        return None
    return decode_frame(data if isinstance(data, bytes) else data.encode())


async def latest_frame(redis: aioredis.Redis, res: int) -> Frame | None:
    return _frame(await redis.get(store_keys.latest_frame_key(res)))


async def frame_at(redis: aioredis.Redis, res: int, window_start_ms: int) -> Frame | None:
    return _frame(await redis.get(store_keys.frame_key(res, window_start_ms)))


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


async def manifest(redis: aioredis.Redis, settings: Settings) -> dict[str, Any]:
    """The manifest the release sink stored; else the one these settings would produce."""
    data = await redis.get(store_keys.MANIFEST_KEY)
    if data:
        loaded: dict[str, Any] = json.loads(data)
        return loaded
    built = build_manifest(
        settings.privacy, window_s=settings.window.window_s, resolutions=settings.window.resolutions
    )
    return dict(msgspec.to_builtins(built))
