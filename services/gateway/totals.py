"""City-wide totals per window, summed from released frames: the map's headline figures and sparklines.

Only released values are added up: a suppressed (null) value is counted as a suppressed cell and left
out of the sum, so a total is the part of the city that may be shown, a lower bound of the true count.
Sums of released values are post-processing of what is already public, so they release nothing new.
Only totals are summed (keys without a `|breakdown=category` part), at one resolution: adding up
several resolutions would count every person once per resolution.
"""

from __future__ import annotations

from typing import Any

from cityscreen.frames import Frame


def window_totals(frame: Frame) -> dict[str, Any]:
    """One window's totals: {window_start_ms, window_s, totals: {key: sum}, released_cells: {key: n},
    suppressed_cells: {key: n}, spans: {layer: [start_ms, end_ms]}} (a layer's values may cover a
    longer window than the frame's, e.g. 15 minutes of spend: a rate divides by the layer's span).

    Every total key present in the frame appears in all three maps: a key whose every cell is
    suppressed sums to 0 with no released cell, which a client must not show as a count of 0.
    """
    totals: dict[str, float] = {}
    released: dict[str, int] = {}
    suppressed: dict[str, int] = {}
    for stats in frame.cells.values():
        for key, value in stats.items():
            if "|" in key:
                continue
            totals.setdefault(key, 0.0)
            released.setdefault(key, 0)
            suppressed.setdefault(key, 0)
            if value is None:
                suppressed[key] += 1
            else:
                totals[key] += value
                released[key] += 1
    return {
        "window_start_ms": frame.window_start_ms,
        "window_s": frame.window_s,
        "totals": dict(sorted(totals.items())),
        "released_cells": dict(sorted(released.items())),
        "suppressed_cells": dict(sorted(suppressed.items())),
        "spans": frame.spans,
    }


def totals_series(frames: list[Frame]) -> list[dict[str, Any]]:
    """`window_totals` of each frame, oldest window first."""
    return [window_totals(f) for f in sorted(frames, key=lambda f: f.window_start_ms)]
