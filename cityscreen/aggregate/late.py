"""Late events: counted per window and cell in the worker, dead-lettered without the person.

A late event's row (`CleanBatch.rows`) holds its pseudonym, res-8 cell, exact time and demographic
profile: together, one person's trace point. The dead letter keeps only what an operator needs to find
the record again and see how late it was: kind, event id (already on the clean topic, opaque by the
generator's rule) and the window it belonged to. The per-cell counts stay in the worker's memory and its
log: they are unthresholded, so they must not reach Redis, which holds released data only.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

import msgspec

from cityscreen.events import CLEAN_TOPICS

LATE = "late"  # dead-letter reason
_ENCODER = msgspec.json.Encoder()


def window_of(ts_ms: int, window_s: int) -> int:
    """Start (ms) of the tumbling window that holds `ts_ms`."""
    return ts_ms - ts_ms % (window_s * 1000)


LETTER_IDS = 1_000  # event ids per late letter: a letter stays far below Kafka's 1 MB message limit


def late_letters(rows: Iterable[dict[str, Any]], window_s: int) -> list[bytes]:
    """The dead letters of one record batch's late events: one per (kind, window), up to `LETTER_IDS`
    event ids each, naming the kind's clean topic; no pseudonym, cell, demographics or exact time.

    One letter per event cost a Kafka send each: a burst of late events (a stalled worker, a replay of
    old records) then slowed the worker by more than the events themselves, made more events late, and
    it never caught up."""
    groups: dict[tuple[str, int], list[str]] = {}
    for row in rows:
        groups.setdefault((str(row["kind"]), window_of(int(row["ts_ms"]), window_s)), []).append(
            str(row["event_id"])
        )
    letters = []
    for (kind, window_start_ms), ids in sorted(groups.items()):
        for i in range(0, len(ids), LETTER_IDS):
            chunk = ids[i : i + LETTER_IDS]
            letter = {"reason": LATE, "source_topic": CLEAN_TOPICS[kind], "kind": kind,
                      "window_start_ms": window_start_ms, "events": len(chunk),
                      "event_ids": chunk}  # fmt: skip
            letters.append(_ENCODER.encode(letter))
    return letters


class LateCounts:
    """Late events per (window start, cell), for the latest `max_windows` windows only (bounded)."""

    def __init__(self, window_s: int, max_windows: int = 60) -> None:
        self.window_s, self.max_windows = window_s, max_windows
        self.counts: Counter[tuple[int, str]] = Counter()

    def add(self, rows: Iterable[dict[str, Any]]) -> None:
        for row in rows:
            self.counts[(window_of(int(row["ts_ms"]), self.window_s), str(row["cell"]))] += 1
        windows = sorted({w for w, _ in self.counts})
        if len(windows) > self.max_windows:
            keep = set(windows[-self.max_windows :])
            self.counts = Counter({k: n for k, n in self.counts.items() if k[0] in keep})

    def summary(self, window_start_ms: int) -> tuple[int, int]:
        """(late events, cells they fell in) of one window."""
        cells = [n for (w, _), n in self.counts.items() if w == window_start_ms]
        return sum(cells), len(cells)
