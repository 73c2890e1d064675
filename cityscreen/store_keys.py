"""Redis key layout shared by the release sink (writer) and the gateway (reader)."""

from __future__ import annotations

PREFIX = "city"
NOTIFY_CHANNEL = f"{PREFIX}:frames:notify"  # pub/sub: {"res": r, "window_start_ms": t}
MANIFEST_KEY = f"{PREFIX}:privacy:manifest"  # JSON privacy manifest in force
STATS_KEY = f"{PREFIX}:stats"  # hash of worker counters (events, late, dead-lettered)
NOW_NOTIFY_CHANNEL = f"{PREFIX}:now:notify"  # pub/sub: {"res": r, "tick_ms": t}
LAG_KEY = f"{PREFIX}:lag"  # hash "<stage>:<topic>:<partition>" -> records its consumer is behind


# Base-window frames (people present, with the latest longer window's layers added) keep the plain keys
# the gateway reads; the frames of a longer window (`span_s`, e.g. 15-minute spend) have their own.


def _span(span_s: int) -> str:
    return f":s{span_s}" if span_s else ""


def latest_frame_key(res: int, span_s: int = 0) -> str:
    """String: the JSON frame of the newest released window at `res`."""
    return f"{PREFIX}:frame:{res}{_span(span_s)}:latest"


def frame_key(res: int, window_start_ms: int, span_s: int = 0) -> str:
    """String (with TTL = history): the JSON frame of one window at `res`."""
    return f"{PREFIX}:frame:{res}{_span(span_s)}:{window_start_ms}"


def frame_index_key(res: int, span_s: int = 0) -> str:
    """Sorted set: member and score = window_start_ms of every frame still kept at `res`."""
    return f"{PREFIX}:frames:{res}{_span(span_s)}"


def now_key(res: int) -> str:
    """String: the JSON `NowFrame` of the newest released tick at `res` (overwritten every tick)."""
    return f"{PREFIX}:now:{res}:latest"
