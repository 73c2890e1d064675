"""Redis key layout shared by the release sink (writer) and the gateway (reader)."""

from __future__ import annotations

PREFIX = "city"
NOTIFY_CHANNEL = f"{PREFIX}:frames:notify"  # pub/sub: {"res": r, "window_start_ms": t}
MANIFEST_KEY = f"{PREFIX}:privacy:manifest"  # JSON privacy manifest in force
STATS_KEY = f"{PREFIX}:stats"  # hash of worker counters (events, late, dead-lettered)
LAG_KEY = f"{PREFIX}:lag"  # hash "<stage>:<topic>:<partition>" -> records its consumer is behind


def latest_frame_key(res: int) -> str:
    """String: the JSON frame of the newest released window at `res`."""
    return f"{PREFIX}:frame:{res}:latest"


def frame_key(res: int, window_start_ms: int) -> str:
    """String (with TTL = history): the JSON frame of one window at `res`."""
    return f"{PREFIX}:frame:{res}:{window_start_ms}"


def frame_index_key(res: int) -> str:
    """Sorted set: member and score = window_start_ms of every frame still kept at `res`."""
    return f"{PREFIX}:frames:{res}"
