"""Where one iteration of a worker's loop spent its time, for a log line when it was slow."""

from __future__ import annotations

import time

SLOW_S = 1.0  # an iteration longer than this holds back what the loop feeds (ticks, windows): logged


class Phases:
    """Seconds spent in each phase of one loop iteration, so a slow one says where the time went."""

    def __init__(self) -> None:
        self.start_s = self.last_s = time.monotonic()
        self.spent: dict[str, float] = {}

    def mark(self, phase: str) -> None:
        now_s = time.monotonic()
        self.spent[phase] = self.spent.get(phase, 0.0) + now_s - self.last_s
        self.last_s = now_s

    def slow(self, limit_s: float = SLOW_S) -> str | None:
        """None when the iteration took less than `limit_s`, else its phases, for a log line."""
        total_s = self.last_s - self.start_s
        if total_s < limit_s:
            return None
        return f"{total_s:.2f} s: " + ", ".join(f"{k} {v:.2f}" for k, v in self.spent.items())
