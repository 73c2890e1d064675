"""Test-only upstream for the gateway's read side: hand-made frames stored as the sink stores them.

In product code only streams/release.py calls `put_released`, after the gate; the gateway tests need
frames with known values to check what the gateway reads, filters and pushes.
"""

from __future__ import annotations

import msgspec
import redis.asyncio as aioredis

from adapters.frame_store import put_released
from cityscreen.frames import Frame


async def write_frame(redis: aioredis.Redis, frame: Frame, *, history_s: int) -> None:
    await put_released(redis, frame, msgspec.json.encode(frame), history_s=history_s)
