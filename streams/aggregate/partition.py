"""One clean-topic partition's open windows: event-time watermarks, late events, closing, and durability.

Watermarks are kept per topic of the partition. An event is late when its window ended more than the
grace period before the watermark of its own topic, or when its window is already closed: that rule
depends only on the order of that topic-partition, and it can never reopen a closed window. Windows
close when every topic's watermark has passed end + grace (or the partition went idle).

Durability: everything applied since the last persist is returned by `take_delta` as bytes, and a
snapshot (closed-through, carry, watermarks) by `snapshot` after a close. `restore` rebuilds the state
from the latest snapshot plus later deltas; records at or below the applied offsets are then skipped, so
a replay after a crash never counts an event twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from cityscreen.events import CleanEvent
from streams.aggregate.close import AggConfig, Carry, close_window
from streams.aggregate.partial import Partial
from streams.aggregate.rows import KINDS, Row, row_of, window_of

_ENC = msgspec.msgpack.Encoder()
_DEC = msgspec.msgpack.Decoder()


@dataclass
class WindowRows:
    rows: dict[str, list[Row]] = field(default_factory=lambda: {k: [] for k in KINDS})
    late_events: int = 0


@dataclass
class PartitionState:
    partition: int
    cfg: AggConfig
    windows: dict[int, WindowRows] = field(default_factory=dict)
    watermark_ms: dict[str, int] = field(default_factory=dict)
    applied_offset: dict[str, int] = field(default_factory=dict)
    closed_through_ms: int | None = None
    carry: Carry = field(default_factory=Carry)
    _delta: list[tuple[str, int, Row]] = field(default_factory=list)
    _delta_late: dict[int, int] = field(default_factory=dict)

    # ------------------------------------------------------------ applying
    def add_record(self, kind: str, offset: int, events: Sequence[CleanEvent]) -> list[CleanEvent]:
        """Apply one Kafka record's events; returns the late ones (for the dead-letter topic)."""
        if offset <= self.applied_offset.get(kind, -1):
            return []  # already reflected in the restored state
        self.applied_offset[kind] = offset
        cfg = self.cfg
        win_ms, span_ms = cfg.window_ms, cfg.window_ms + cfg.grace_ms
        wm = self.watermark_ms.get(kind, -(2**62))
        closed = self.closed_through_ms if self.closed_through_ms is not None else -(2**62)
        late: list[CleanEvent] = []
        windows, delta = self.windows, self._delta
        for event in events:
            ts = event.ts_ms
            w = ts - ts % win_ms
            if w <= closed or w + span_ms <= wm:
                late.append(event)
                # reported with the open window at its topic's watermark (never a closed one)
                home = max(window_of(wm, win_ms), closed + win_ms)
                self._count_late(home)
                continue
            if ts > wm:
                wm = ts
            row = row_of(event, cfg.base_res, cfg.clip_cny)
            wr = windows.get(w)
            if wr is None:
                wr = windows[w] = WindowRows()
            wr.rows[kind].append(row)
            delta.append((kind, w, row))
        self.watermark_ms[kind] = wm
        return late

    def _count_late(self, w: int) -> None:
        wr = self.windows.get(w)
        if wr is None:
            wr = self.windows[w] = WindowRows()
        wr.late_events += 1
        self._delta_late[w] = self._delta_late.get(w, 0) + 1

    # ------------------------------------------------------------ closing
    def due_through_ms(self, quiet: frozenset[str] = frozenset()) -> int | None:
        """The latest window start whose end + grace every topic's watermark has passed.

        Topics in `quiet` (no record for a while, e.g. transit at 3 a.m.) do not hold the watermark
        back; anything they deliver later for a closed window is late, like any late event.
        """
        considered = [k for k in KINDS if k not in quiet]
        if not considered or any(k not in self.watermark_ms for k in considered):
            return None  # a topic not yet seen may still hold events of the oldest window
        wm = min(self.watermark_ms[k] for k in considered)
        return window_of(wm - self.cfg.grace_ms, self.cfg.window_ms) - self.cfg.window_ms

    def close_due(self, *, idle: bool = False, quiet: frozenset[str] = frozenset()) -> list[Partial]:
        """Close every due window (all open ones when idle), oldest first; advances closed-through."""
        through = max(self.windows) if idle and self.windows else self.due_through_ms(quiet)
        if through is None or (self.closed_through_ms is not None and through <= self.closed_through_ms):
            return []
        out = []
        for w in sorted(x for x in self.windows if x <= through):
            wr = self.windows.pop(w)
            r = wr.rows
            out.append(
                close_window(w, self.partition, r["sim"], r["payment"], r["transit"], self.carry, self.cfg,
                             wr.late_events)
            )  # fmt: skip
        self.closed_through_ms = through
        return out

    # ------------------------------------------------------------ durability
    def take_delta(self) -> tuple[bytes, int] | None:
        """What was applied since the last call and its newest window, or None; persist it before
        offsets are committed."""
        if not self._delta and not self._delta_late:
            return None
        newest = max([w for _, w, _ in self._delta] + list(self._delta_late))
        data = _ENC.encode(
            {
                "rows": self._delta,
                "late": self._delta_late,
                "wm": self.watermark_ms,
                "off": self.applied_offset,
            }
        )
        self._delta, self._delta_late = [], {}
        return data, newest

    def snapshot(self) -> bytes:
        """Everything but the open windows' rows (those live in the deltas)."""
        return _ENC.encode(
            {
                "closed": self.closed_through_ms,
                "wm": self.watermark_ms,
                "off": self.applied_offset,
                "last": self.carry.last_cell,
                "trip": self.carry.open_trip,
            }
        )

    @classmethod
    def restore(
        cls, partition: int, cfg: AggConfig, snapshot: bytes | None, deltas: Sequence[bytes]
    ) -> PartitionState:
        state = cls(partition, cfg)
        if snapshot is not None:
            snap: Mapping[str, Any] = _DEC.decode(snapshot)
            state.closed_through_ms = snap["closed"]
            state.watermark_ms = dict(snap["wm"])
            state.applied_offset = dict(snap["off"])
            state.carry = Carry(
                {p: (c, t) for p, (c, t) in snap["last"].items()},
                {p: (c, t) for p, (c, t) in snap["trip"].items()},
            )
        closed = state.closed_through_ms if state.closed_through_ms is not None else -(2**62)
        for raw in deltas:
            d: Mapping[str, Any] = _DEC.decode(raw)
            for kind, w, row in d["rows"]:
                if w > closed:
                    state.windows.setdefault(w, WindowRows()).rows[kind].append(tuple(row))
            for w, n in d["late"].items():
                if w > closed:
                    state.windows.setdefault(w, WindowRows()).late_events += n
            for k, v in d["wm"].items():
                state.watermark_ms[k] = max(v, state.watermark_ms.get(k, v))
            for k, v in d["off"].items():
                state.applied_offset[k] = max(v, state.applied_offset.get(k, v))
        return state
