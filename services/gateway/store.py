"""What the gateway reads from Redis: released frames (through `adapters.frame_store`, the layout's one
home) and the privacy manifest. Read-only: only the release sink writes, after the gate."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import redis.asyncio as aioredis

from adapters.frame_store import frame_at, latest_frame, recent_frames, recent_windows
from cityscreen import store_keys
from cityscreen.privacy import build_manifest
from cityscreen.settings import Settings


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


__all__ = ["frame_at", "latest_frame", "manifest", "recent_frames", "recent_windows"]
