"""What the gateway reads from Redis: released frames and the now layer's newest ticks (through
`adapters.frame_store`, the layout's one home) and the privacy manifest. Read-only: only the release
sink and the now worker write, after the gate and the continual-release mechanism."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import redis.asyncio as aioredis

from adapters.frame_store import frame_at, latest_frame, latest_now, recent_frames, recent_windows
from cityscreen import store_keys
from cityscreen.privacy import manifest_for
from cityscreen.settings import Settings


async def manifest(redis: aioredis.Redis, settings: Settings) -> dict[str, Any]:
    """The manifest the release sink stored; else the one these settings would produce."""
    data = await redis.get(store_keys.MANIFEST_KEY)
    if data:
        loaded: dict[str, Any] = json.loads(data)
        return loaded
    return dict(msgspec.to_builtins(manifest_for(settings)))


__all__ = ["frame_at", "latest_frame", "latest_now", "manifest", "recent_frames", "recent_windows"]
