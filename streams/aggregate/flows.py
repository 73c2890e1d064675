"""Origin-destination flows of one window, and the per-person state they carry across windows.

Transit pairs a tap-out with the same person's last tap-in; movement pairs a person's consecutive SIM
cells (at `flow_res`). A flow counts in the window of its later event, a person counts once per (origin,
dest) pair, and same-cell pairs are not flows. With a contribution limit, a person adds at most that many
distinct pairs per kind per window, the earliest ones.

Almost every person has one SIM event per window, so movement is computed in bulk: only persons seen
before (in the carry) can move, and only persons with several events need the sequential rule.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import compress, repeat
from operator import is_not

from cityscreen.geo import parent_of
from streams.aggregate.rows import Row

_FLOW_PARENT: dict[int, dict[str, str]] = {}  # flow res -> cell -> parent


@dataclass
class Carry:
    """Per-person state that spans windows: last SIM flow cell and open trip, each with its time."""

    last_cell: dict[str, tuple[str, int]] = field(default_factory=dict)
    open_trip: dict[str, tuple[str, int]] = field(default_factory=dict)
    # a lower bound of every time in the carry (None: unknown), so that pruning scans rarely
    oldest_ms: int | None = field(default=None, compare=False)

    def touch(self, ts_ms: int) -> None:
        """Entries at or after `ts_ms` are about to be added."""
        if self.oldest_ms is not None and ts_ms < self.oldest_ms:
            self.oldest_ms = ts_ms

    def prune(self, now_ms: int, ttl_ms: int) -> None:
        """Forget entries older than the TTL. Their only effect is memory: every use checks the TTL
        itself, so a stale entry and a missing one give the same flows. A full scan therefore runs only
        once the oldest entry is a quarter TTL past it, not at every window."""
        if self.oldest_ms is not None and now_ms - self.oldest_ms <= ttl_ms + ttl_ms // 4:
            return
        oldest = now_ms
        for d in (self.last_cell, self.open_trip):
            stale = [p for p, (_, ts) in d.items() if now_ms - ts > ttl_ms]
            for p in stale:
                del d[p]
            oldest = min([oldest, *(ts for _, ts in d.values())])
        self.oldest_ms = oldest


def flow_cells(cells: Iterable[str], flow_res: int) -> list[str]:
    """Each cell's parent at the flow resolution (memoised: a city has a few thousand cells)."""
    memo = _FLOW_PARENT.setdefault(flow_res, {})
    cells = cells if isinstance(cells, (list, tuple)) else list(cells)
    out = list(map(memo.get, cells))
    if None in out:
        for c in cells:
            if c not in memo:
                memo[c] = parent_of(c, flow_res)
        out = list(map(memo.__getitem__, cells))
    return out  # type: ignore[return-value]


class _Pairs:
    def __init__(self, limit: int | None) -> None:
        self.pairs: dict[tuple[str, str, str], set[str]] = defaultdict(set)
        self.per_person: dict[tuple[str, str], int] = defaultdict(int)
        self.limit = limit

    def add(self, origin: str, dest: str, kind: str, person: str) -> None:
        if origin == dest or person in self.pairs[(origin, dest, kind)]:
            return
        if self.limit is not None and self.per_person[(kind, person)] >= self.limit:
            return
        self.per_person[(kind, person)] += 1
        self.pairs[(origin, dest, kind)].add(person)


def window_flows(
    persons: Sequence[str],
    times: Sequence[int],
    cells: Sequence[str],
    first_ms: int | None,
    multi: Mapping[str, list[int]],
    transits_sorted: list[Row],
    carry: Carry,
    flow_res: int,
    ttl_ms: int,
    limit: int | None,
) -> list[tuple[str, str, str, int]]:
    """The window's flows; updates `carry`. `persons`, `times` and `cells` are the SIM columns in any
    order, `first_ms` their earliest time, and `multi` maps each person with several SIM rows to their
    row indexes in (time, event id) order; `transits_sorted` is in that order too."""
    acc = _Pairs(limit)
    for first in (first_ms, transits_sorted[0][0] if transits_sorted else None):
        if first is not None:
            carry.touch(first)
    for ts, _, person, cell, tap, _, _ in transits_sorted:
        fcell = flow_cells((cell,), flow_res)[0]
        if tap == "in":
            carry.open_trip[person] = (fcell, ts)
            continue
        trip = carry.open_trip.pop(person, None)
        if trip is not None and ts - trip[1] <= ttl_ms:
            acc.add(trip[0], fcell, "transit", person)

    last_cell = carry.last_cell
    fcells = flow_cells(cells, flow_res)
    for person, rows in multi.items():  # several events: the sequential rule
        prev = last_cell.get(person)
        for i in rows:
            if prev is not None and times[i] - prev[1] <= ttl_ms:
                acc.add(prev[0], fcells[i], "movement", person)
            prev = (fcells[i], times[i])
    # persons with one event: only those with a carried cell can move
    prevs = list(map(last_cell.get, persons))
    if prevs.count(None) < len(prevs):
        n = len(persons)
        seen = compress(zip(persons, range(n), prevs, strict=True), map(is_not, prevs, repeat(None)))
        for person, i, carried in seen:
            assert carried is not None  # compress kept only those
            if person not in multi and times[i] - carried[1] <= ttl_ms:
                acc.add(carried[0], fcells[i], "movement", person)
    last_cell.update(zip(persons, zip(fcells, times, strict=True), strict=True))
    for person, rows in multi.items():
        last_cell[person] = (fcells[rows[-1]], times[rows[-1]])
    return [(o, d, k, len(ps)) for (o, d, k), ps in sorted(acc.pairs.items())]
