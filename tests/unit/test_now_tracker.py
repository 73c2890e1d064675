"""The streaming presence tracker gives exactly what the batch functions give over the whole period,
whatever the batches and their order, and its moves add up to the bounded stock without persons."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from cityscreen.privacy.bounded_presence import ABSENT, bound_changes, presence_changes, stock_at
from cityscreen.privacy.now_tracker import Move, NowTracker

TTL, UNTIL = 10_000, 200_000


def _reports(seed: int, persons: int = 150) -> list[tuple[int, int, int]]:
    rng = np.random.default_rng(seed)
    n = persons * 15
    person, ts, cell = rng.integers(0, persons, n), rng.integers(0, UNTIL - 5_000, n), rng.integers(0, 5, n)
    ts[: n // 10] = ts[n // 10 : 2 * (n // 10)]  # ties: two reports at the same moment
    return list(zip(person.tolist(), ts.tolist(), cell.tolist(), strict=True))


def _stream(
    reports: list[tuple[int, int, int]], settle_ms: int, max_changes: int, seed: int
) -> tuple[list[Move], NowTracker]:
    rng = np.random.default_rng(seed)
    tracker = NowTracker(ttl_ms=TTL, settle_ms=settle_ms, max_changes=max_changes)
    marks = [*sorted(set(rng.integers(1, UNTIL, 25).tolist())), UNTIL + 1]
    moves: list[Move] = []
    low = None
    for mark in marks:
        batch = [r for r in reports if (low is None or r[1] >= low) and r[1] < mark]
        tracker.feed(batch)  # arrival order kept: ties resolve as in the batch version
        moves += tracker.advance(mark)
        low = mark
    return moves, tracker


@pytest.mark.parametrize(("settle_ms", "max_changes", "seed"), [(0, 4, 1), (1_500, 5, 2), (4_000, 8, 3)])
def test_streaming_equals_the_batch_functions(settle_ms: int, max_changes: int, seed: int) -> None:
    reports = _reports(seed)
    person, ts, cell = (np.array(x) for x in zip(*reports, strict=True))
    batch = bound_changes(
        presence_changes(person, ts, cell, ttl_ms=TTL, until_ms=UNTIL, settle_ms=settle_ms), max_changes
    )
    moves, tracker = _stream(reports, settle_ms, max_changes, seed)
    ours = sorted(((m.person, m.ts_ms, m.to_cell) for m in moves), key=lambda r: (r[0], r[1]))
    theirs = list(
        zip(
            batch.changes.person.tolist(),
            batch.changes.ts_ms.tolist(),
            batch.changes.cell.tolist(),
            strict=True,
        )
    )
    assert len(theirs) > 500
    assert ours == theirs
    assert (tracker.persons_cut, tracker.changes_dropped) == (batch.persons_cut, batch.changes_dropped)
    assert tracker.changes_dropped > 0


def test_moves_add_up_to_the_bounded_stock_without_any_person() -> None:
    reports = _reports(5)
    person, ts, cell = (np.array(x) for x in zip(*reports, strict=True))
    bounded = bound_changes(
        presence_changes(person, ts, cell, ttl_ms=TTL, until_ms=UNTIL, settle_ms=2_000), 6
    )
    moves, _ = _stream(reports, 2_000, 6, 5)
    for at in range(0, UNTIL, 9_973):
        stock: Counter[int] = Counter()
        for m in moves:
            if m.ts_ms <= at:
                stock[m.from_cell] -= 1
                stock[m.to_cell] += 1
        stock.pop(ABSENT, None)
        cells, persons = stock_at(bounded.changes, at)
        assert {c: n for c, n in stock.items() if n} == dict(
            zip(cells.tolist(), persons.tolist(), strict=True)
        )


def test_a_report_behind_the_watermark_is_refused() -> None:
    tracker = NowTracker(ttl_ms=TTL, settle_ms=0, max_changes=4)
    tracker.advance(5_000)
    with pytest.raises(ValueError, match="behind the watermark"):
        tracker.feed([(1, 4_999, 3)])


@pytest.mark.parametrize(
    "reports",
    [
        [(1, 0, 5), (1, 1_500, 6)],  # a report from elsewhere exactly when the first settles
        [(1, 0, 5), (1, 700, 5), (1, 900, 6), (1, 900 + TTL, 6)],  # settled by a second report
        [(1, 0, 5), (1, TTL, 5), (1, 2 * TTL + 1, 5)],  # a report exactly at the TTL, then one past it
    ],
)
def test_ties_resolve_as_in_the_batch_functions(reports: list[tuple[int, int, int]]) -> None:
    person, ts, cell = (np.array(x) for x in zip(*reports, strict=True))
    batch = presence_changes(person, ts, cell, ttl_ms=TTL, until_ms=UNTIL, settle_ms=1_500)
    tracker = NowTracker(ttl_ms=TTL, settle_ms=1_500, max_changes=8)
    tracker.feed(reports)
    ours = [(m.person, m.ts_ms, m.to_cell) for m in tracker.advance(UNTIL + 1)]
    assert ours == list(zip(batch.person.tolist(), batch.ts_ms.tolist(), batch.cell.tolist(), strict=True))
