"""Presence tracks for the now layer: changes, settling, expiry, the per-day bound, and the sensitivity
the person-day budget is calibrated to."""

from __future__ import annotations

import numpy as np
import pytest

from cityscreen.privacy.bounded_presence import (
    ABSENT,
    Changes,
    bound_changes,
    changes_per_person,
    coarsened,
    presence_changes,
    stock_at,
)
from cityscreen.privacy.continual import tree_levels
from cityscreen.privacy.person_day import presence_sensitivity2

TTL = 10_000


def _track(reports: list[tuple[int, int, int]], *, until_ms: int = 100_000, settle_ms: int = 0) -> Changes:
    person, ts, cell = (np.array(x, dtype=np.int64) for x in zip(*reports, strict=True))
    return presence_changes(person, ts, cell, ttl_ms=TTL, until_ms=until_ms, settle_ms=settle_ms)


def _rows(changes: Changes) -> list[tuple[int, int, int]]:
    return list(zip(changes.person.tolist(), changes.ts_ms.tolist(), changes.cell.tolist(), strict=True))


def test_a_person_arrives_moves_and_leaves_when_the_ttl_runs_out() -> None:
    changes = _track([(1, 0, 5), (1, 1000, 5), (1, 2000, 6)], until_ms=50_000)
    assert _rows(changes) == [(1, 0, 5), (1, 2000, 6), (1, 2000 + TTL, ABSENT)]


def test_no_leave_before_the_ttl_has_run_out_at_the_last_moment_asked_for() -> None:
    assert _rows(_track([(1, 0, 5)], until_ms=TTL - 1)) == [(1, 0, 5)]


def test_towers_passed_on_a_trip_are_no_change_once_a_person_must_settle() -> None:
    reports = [(1, 0, 5), (1, 100, 6), (1, 200, 7), (1, 1300, 7)]
    assert _rows(_track(reports, settle_ms=1000)) == [(1, 1200, 7), (1, 1300 + TTL, ABSENT)]
    # at once, every tower is a change
    assert [c for _, _, c in _rows(_track(reports))] == [5, 6, 7, ABSENT]


def test_settling_must_come_before_expiring() -> None:
    with pytest.raises(ValueError, match="settle"):
        _track([(1, 0, 5)], settle_ms=TTL)


def test_the_bound_turns_the_last_allowed_change_into_a_leave_and_drops_the_rest() -> None:
    changes = _track([(1, t * 100, t % 2) for t in range(6)] + [(2, 0, 9), (2, 100, 8)], until_ms=5000)
    bounded = bound_changes(changes, 3)
    assert _rows(bounded.changes) == [(1, 0, 0), (1, 100, 1), (1, 200, ABSENT), (2, 0, 9), (2, 100, 8)]
    assert (bounded.persons_cut, bounded.changes_dropped) == (1, 3)


def test_a_person_whose_last_allowed_change_is_a_leave_anyway_is_not_counted_as_cut() -> None:
    changes = _track([(1, 0, 5), (1, 100, 6)], until_ms=50_000)  # arrive, move, leave: three
    assert bound_changes(changes, 3).persons_cut == 0


def _random_reports(rng: np.random.Generator, persons: int, cells: int) -> Changes:
    n = persons * 12
    person = rng.integers(0, persons, n)
    ts = rng.integers(0, 200_000, n)
    cell = rng.integers(0, cells, n)
    return presence_changes(person, ts, cell, ttl_ms=TTL, until_ms=200_000, settle_ms=500)


def test_the_bound_holds_and_never_places_anyone_where_they_are_not() -> None:
    rng = np.random.default_rng(7)
    changes = _random_reports(rng, persons=300, cells=6)
    assert changes_per_person(changes).max() > 5  # the bound below has work to do
    bounded = bound_changes(changes, 5)
    assert changes_per_person(bounded.changes).max() <= 5
    for at in range(0, 200_000, 7_919):
        exact = dict(zip(*(a.tolist() for a in stock_at(changes, at)), strict=True))
        cut = dict(zip(*(a.tolist() for a in stock_at(bounded.changes, at)), strict=True))
        assert all(n <= exact.get(cell, 0) for cell, n in cut.items())


def test_a_coarser_track_has_no_more_changes_and_no_moves_inside_a_parent() -> None:
    changes = _track([(1, 0, 0), (1, 100, 1), (1, 200, 2), (1, 300, 3)], until_ms=1000)
    parent = np.array([0, 0, 1, 1])
    assert _rows(coarsened(changes, parent)) == [(1, 0, 0), (1, 200, 1)]


def _node_vector_norm2(track: list[tuple[int, int]], ticks: int) -> int:
    """Squared L2 norm of what one person adds to every tree node of every cell: a node holds, per
    cell, the net change of the stock over its ticks. `track`: (tick, cell or ABSENT) changes."""
    levels = tree_levels(ticks)
    state = np.full(ticks + 1, ABSENT)  # state[t]: the cell at the end of tick t
    for tick, cell in track:
        state[tick:] = cell
    total = 0
    for level in range(levels):
        width = 1 << level
        for index in range(ticks // width):
            before, after = state[index * width], state[(index + 1) * width]
            total += int(before != after) * (int(before != ABSENT) + int(after != ABSENT))
    return total


def test_one_person_moves_a_resolutions_tree_by_at_most_the_stated_sensitivity_and_can_reach_it() -> None:
    rng = np.random.default_rng(11)
    ticks, max_changes = 64, 6
    bound = presence_sensitivity2(ticks, max_changes)
    for _ in range(400):
        times = sorted(rng.choice(np.arange(1, ticks + 1), size=max_changes, replace=False).tolist())
        track = [(t, int(rng.integers(-1, 4))) for t in times]
        assert _node_vector_norm2(track, ticks) <= bound
    # spread out, every change to a new cell: each level's nodes hold as many changes as they can
    spread = [(1, 0), (11, 1), (22, 2), (33, 3), (44, 4), (55, 5)]
    assert _node_vector_norm2(spread, ticks) == bound == 55
