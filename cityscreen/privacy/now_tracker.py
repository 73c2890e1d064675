"""The now layer's presence tracks as a stream: what `presence_changes` (with settling) and
`bound_changes` compute over a whole period, one batch of reports at a time.

Reports arrive in any order up to a watermark: `feed` buffers them, `advance(watermark_ms)` settles
every change before the watermark, which is final from then on (the aggregator's watermark promises
no more reports before it). Each change carries the cell it leaves, so what flows on to the release
is per-cell moves, with no person in it.

Per person: the settled cell (on the unbounded track, as the batch version dedupes before bounding),
the open segment (cell, whether settled), the last report, and the changes made today.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import h3

from cityscreen.privacy.bounded_presence import ABSENT, check_max_changes, check_settle

_SETTLE, _EXPIRE = 0, 1
NONE = -1  # no timer


@dataclass(frozen=True)
class Move:
    """From `ts_ms` on, one person counts in `to_cell` instead of `from_cell` (either may be ABSENT)."""

    person: int
    ts_ms: int
    from_cell: int
    to_cell: int


@dataclass(slots=True)
class _Person:
    state: int = ABSENT  # settled cell on the unbounded track
    shown: int = ABSENT  # cell on the bounded track (what the now layer counts)
    changes: int = 0
    counted_cut: bool = False  # counted in persons_cut (the bound took them off the layer)
    seg_cell: int = ABSENT
    seg_settled: bool = True
    last_ts: int | None = None
    # each kind's timer: when it is due (NONE: not armed), and the due of its entry in the heap. A
    # person has at most one entry per kind there: a timer armed again later waits for the entry to pop
    # and goes back in then, so a day's reports do not pile up stale entries (memory, and the GC's work)
    settle_due: int = NONE
    expire_due: int = NONE
    settle_queued: int = NONE
    expire_queued: int = NONE

    def due(self, kind: int) -> int:
        return self.settle_due if kind == _SETTLE else self.expire_due

    def set_due(self, kind: int, due: int) -> None:
        if kind == _SETTLE:
            self.settle_due = due
        else:
            self.expire_due = due

    def queued(self, kind: int) -> int:
        return self.settle_queued if kind == _SETTLE else self.expire_queued

    def set_queued(self, kind: int, due: int) -> None:
        if kind == _SETTLE:
            self.settle_queued = due
        else:
            self.expire_queued = due


class NowTracker:
    """One partition's persons over one period."""

    def __init__(self, *, ttl_ms: int, settle_ms: int, max_changes: int) -> None:
        check_settle(settle_ms, ttl_ms)
        check_max_changes(max_changes)
        self.ttl_ms, self.settle_ms, self.max_changes = ttl_ms, settle_ms, max_changes
        self.persons: dict[int, _Person] = {}
        self.watermark_ms: int | None = None
        self.persons_cut = 0
        self.changes_dropped = 0
        self._buffer: list[tuple[int, int, int, int]] = []  # (ts, seq, person, cell)
        self._seq = 0
        self._timers: list[tuple[int, int, int]] = []  # (due, person, kind); see _Person
        self._out: list[Move] = []

    def feed(self, reports: list[tuple[int, int, int]]) -> None:
        """Position reports (person, ts_ms, cell). One before the watermark is too late and refused."""
        for person, ts, cell in reports:
            if self.watermark_ms is not None and ts < self.watermark_ms:
                raise ValueError(
                    f"a report at {ts} is behind the watermark {self.watermark_ms}: the watermark must "
                    "only pass what has arrived"
                )
            self._buffer.append((ts, self._seq, person, cell))
            self._seq += 1

    def advance(self, watermark_ms: int) -> list[Move]:
        """Every change before `watermark_ms`, in time order."""
        due = sorted(r for r in self._buffer if r[0] < watermark_ms)
        self._buffer = [r for r in self._buffer if r[0] >= watermark_ms]
        for ts, _, person, cell in due:
            self._fire_until(ts, person)
            self._report(person, ts, cell)
        self._fire_all(watermark_ms)
        self.watermark_ms = watermark_ms
        out, self._out = sorted(self._out, key=lambda m: m.ts_ms), []
        return out

    def _fire_until(self, ts: int, person: int) -> None:
        """One person's timers that come before a report of theirs at `ts`: a settling due by then
        (a report from elsewhere at that very moment does not stop it), an expiry due before it."""
        p = self.persons.get(person)
        if p is None:
            return
        settle = p.settle_due
        if settle != NONE and settle <= ts:
            self._settle(person, p, settle)
        expire = p.expire_due
        if expire != NONE and expire < ts:
            self._expire(person, p, expire)

    def _fire_all(self, watermark_ms: int) -> None:
        while self._timers and self._timers[0][0] < watermark_ms:
            due, person, kind = heapq.heappop(self._timers)
            p = self.persons[person]
            if p.queued(kind) == due:
                p.set_queued(kind, NONE)
            armed = p.due(kind)
            if armed == due:
                if kind == _SETTLE:
                    self._settle(person, p, due)
                else:
                    self._expire(person, p, due)
            elif armed > due and p.queued(kind) == NONE:
                self._queue(person, p, kind, armed)  # armed again since: back in at its due
            # else cancelled, or an earlier entry of this kind stands for it

    def _arm(self, person: int, p: _Person, kind: int, due: int) -> None:
        p.set_due(kind, due)
        queued = p.queued(kind)
        if queued == NONE or due < queued:
            self._queue(person, p, kind, due)

    def _queue(self, person: int, p: _Person, kind: int, due: int) -> None:
        p.set_queued(kind, due)
        heapq.heappush(self._timers, (due, person, kind))

    def _report(self, person: int, ts: int, cell: int) -> None:
        p = self.persons.setdefault(person, _Person())
        gap_ok = p.last_ts is not None and ts - p.last_ts <= self.ttl_ms
        if gap_ok and cell == p.seg_cell:
            if not p.seg_settled:
                self._settle(person, p, ts)  # a second report there settles it
        else:
            p.settle_due = NONE  # the open segment never settled: a trip's tower
            p.seg_cell, p.seg_settled = cell, False
            if self.settle_ms == 0:
                self._settle(person, p, ts)
            else:
                self._arm(person, p, _SETTLE, ts + self.settle_ms)
        p.last_ts = ts
        self._arm(person, p, _EXPIRE, ts + self.ttl_ms)

    def _settle(self, person: int, p: _Person, at: int) -> None:
        p.settle_due = NONE
        p.seg_settled = True
        self._change(person, p, at, p.seg_cell)

    def _expire(self, person: int, p: _Person, at: int) -> None:
        p.expire_due = NONE
        p.seg_cell = ABSENT
        self._change(person, p, at, ABSENT)

    def _change(self, person: int, p: _Person, at: int, cell: int) -> None:
        """A change of the unbounded track, then the bound: the last allowed change is a leave."""
        if cell == p.state:
            return
        p.state = cell
        rank = p.changes
        p.changes += 1
        if rank >= self.max_changes:
            self.changes_dropped += 1
            if not p.counted_cut:
                self.persons_cut += 1
                p.counted_cut = True
            return
        if rank == self.max_changes - 1:
            if cell != ABSENT:
                self.persons_cut += 1
                p.counted_cut = True
            cell = ABSENT
        self._out.append(Move(person, at, p.shown, cell))
        p.shown = cell


def moves_at(
    moves: list[Move], names: Sequence[str] | Mapping[int, str], res: int
) -> list[tuple[int, str | None, str | None]]:
    """Moves as `RunningStock.add` takes them at resolution `res`: cell codes at the finest tree
    resolution (`names[code]`: a list of names, or the now worker's H3 integers to names) turned into
    their parents at `res`, with no person; a move inside one parent is no move there."""

    def name(code: int) -> str | None:
        return None if code == ABSENT else h3.cell_to_parent(names[code], res)

    out: list[tuple[int, str | None, str | None]] = []
    for move in moves:
        left, entered = name(move.from_cell), name(move.to_cell)
        if left != entered:
            out.append((move.ts_ms, left, entered))
    return out
