"""Presence tracks for the now layer, with each person's changes per day bounded.

A person is present at their last position for `ttl_ms` after it (as people present counts them,
cityscreen/aggregate/stock.py). Their track at one resolution is the list of changes: arrive in a
cell, move to another, leave when the TTL runs out. The now layer's privacy (person_day.py) rests on a
bound of `max_changes` changes per person-day: the change that reaches the bound takes the person off
the now layer (it becomes a leave) and later ones are dropped, so the bound never places anyone where
they are not; it only undercounts, and the drops are counted so the bias can be reported.

Arrays throughout: one row per position report (a SIM event), persons as whole numbers, cells as
whole numbers, ABSENT for "not present".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cityscreen.aggregate.rows import rank_in_run, run_ends, run_starts

ABSENT = -1


@dataclass(frozen=True)
class Changes:
    """Presence changes in (person, time) order: from `ts_ms` on, `person` is in `cell` (or ABSENT)."""

    person: np.ndarray
    ts_ms: np.ndarray
    cell: np.ndarray

    def take(self, rows: np.ndarray) -> Changes:
        return Changes(self.person[rows], self.ts_ms[rows], self.cell[rows])


@dataclass(frozen=True)
class Bounded:
    changes: Changes
    persons_cut: int  # persons whose bound took them off the now layer
    changes_dropped: int  # changes after the bound (not counting the one turned into a leave)


def check_settle(settle_ms: int, ttl_ms: int) -> None:
    if not 0 <= settle_ms < ttl_ms:
        raise ValueError(
            f"settle_ms ({settle_ms}) must be at least 0 and below ttl_ms ({ttl_ms}): a person must settle "
            "before they expire (CITY_NOW__SETTLE_S below CITY_WINDOW__PRESENCE_TTL_S)"
        )


def check_max_changes(max_changes: int) -> None:
    if max_changes < 2:
        raise ValueError(f"max_changes must be at least 2 (an arrival and a leave), got {max_changes}")


def _changed(person: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """Whether each row's cell differs from the person's row before (ABSENT before their first)."""
    prior = np.empty(len(cell), dtype=cell.dtype)
    prior[1:] = cell[:-1]
    prior[run_starts(person)] = ABSENT
    changed: np.ndarray = cell != prior
    return changed


def presence_changes(
    person: np.ndarray,
    ts_ms: np.ndarray,
    cell: np.ndarray,
    *,
    ttl_ms: int,
    until_ms: int,
    settle_ms: int = 0,
) -> Changes:
    """Each person's changes up to `until_ms` from their position reports (any order). A person moves
    to a cell once they have been there `settle_ms` without a report from elsewhere (0: at once), so
    the towers passed on a trip are not changes (a second report there settles them sooner); they
    leave `ttl_ms` after their last report."""
    check_settle(settle_ms, ttl_ms)
    order = np.lexsort((ts_ms, person))
    p, t, c = person[order], ts_ms[order], cell[order]
    first = run_starts(p)
    last = run_ends(first)
    gap = np.full(len(p), np.iinfo(np.int64).max, dtype=np.int64)
    gap[:-1] = np.where(last[:-1], gap[:-1], t[1:] - t[:-1])
    expires = (gap > ttl_ms) & (t + ttl_ms <= until_ms)
    # a segment: reports of one person in one cell, none more than the TTL apart
    begins = first.copy()
    begins[1:] |= (c[1:] != c[:-1]) | (gap[:-1] > ttl_ms)
    starts = np.flatnonzero(begins)
    following = np.append(starts[1:], len(p))  # the next segment's first report (or the end)
    next_ms = np.full(len(starts), np.iinfo(np.int64).max, dtype=np.int64)
    same = following < len(p)
    next_ms[same] = np.where(p[following[same]] == p[starts[same]], t[following[same]], next_ms[same])
    # settled: a second report there, or settle_ms with no report from elsewhere, whichever is first
    settle_at = t[starts] + settle_ms
    twice = following - starts >= 2
    settle_at[twice] = np.minimum(settle_at[twice], t[starts[twice] + 1])
    settles = (settle_at <= next_ms) & (settle_at <= until_ms)
    at = starts[settles]
    p = np.concatenate([p[at], p[expires]])
    t = np.concatenate([settle_at[settles], t[expires] + ttl_ms])
    c = np.concatenate([c[at], np.full(int(expires.sum()), ABSENT, dtype=c.dtype)])
    order = np.lexsort((t, p))  # an expiry never ties a settling: the TTL is longer than settle_ms
    p, t, c = p[order], t[order], c[order]
    changed = _changed(p, c)
    return Changes(p[changed], t[changed], c[changed])


def coarsened(changes: Changes, parent: np.ndarray) -> Changes:
    """The same track at a coarser resolution: `parent[cell]` is each fine cell's parent code. A move
    inside one parent is no change there, so the coarser track never has more changes."""
    cell = np.where(changes.cell == ABSENT, ABSENT, parent[np.maximum(changes.cell, 0)]).astype(
        changes.cell.dtype
    )
    changed = _changed(changes.person, cell)
    return Changes(changes.person[changed], changes.ts_ms[changed], cell[changed])


def bound_changes(changes: Changes, max_changes: int) -> Bounded:
    """At most `max_changes` changes per person: the last allowed one becomes a leave, later ones go.
    Decided change by change, as a stream would, without knowing whether more follow."""
    check_max_changes(max_changes)
    rank = rank_in_run(run_starts(changes.person))
    cut = rank == max_changes - 1
    more = np.zeros(len(rank), dtype=bool)
    more[:-1] = rank[1:] > 0  # another change of the same person follows
    affected = cut & ((changes.cell != ABSENT) | more)
    cell = changes.cell.copy()
    cell[cut] = ABSENT
    keep = rank < max_changes
    kept = Changes(changes.person[keep], changes.ts_ms[keep], cell[keep])
    return Bounded(kept, persons_cut=int(affected.sum()), changes_dropped=int((~keep).sum()))


def stock_at(changes: Changes, at_ms: int) -> tuple[np.ndarray, np.ndarray]:
    """People present at `at_ms`: (cells, persons per cell), from each person's last change by then."""
    upto = changes.take(np.flatnonzero(changes.ts_ms <= at_ms))
    here = upto.cell[run_ends(run_starts(upto.person))]
    cells, persons = np.unique(here[here != ABSENT], return_counts=True)
    return cells, persons


def changes_per_person(changes: Changes) -> np.ndarray:
    """How many changes each person with any made."""
    _, counts = np.unique(changes.person, return_counts=True)
    return counts
