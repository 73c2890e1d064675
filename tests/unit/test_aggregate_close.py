"""Closing one window: the counting rules, table-driven on hand-made rows."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from cityscreen.geo import cell_for, parent_of
from cityscreen.settings import Settings
from streams.aggregate.close import AggConfig, Carry, close_window
from streams.aggregate.rows import Row

A = cell_for(22.5431, 114.0579, 8)
B = cell_for(22.6431, 114.2579, 8)  # far enough to be another flow cell
W0 = 1_767_225_600_000


def cfg(**privacy: object) -> AggConfig:
    return AggConfig.from_settings(Settings(privacy=privacy))  # type: ignore[arg-type]


@pytest.fixture
def sim() -> Callable[..., Row]:
    def make(person: str = "p1", cell: str = A, ts: int = W0, eid: str = "e", **kw: str) -> Row:
        return (
            ts,
            eid,
            person,
            cell,
            kw.get("gender", "F"),
            kw.get("age", "25-34"),
            kw.get("origin", "east"),
        )

    return make


def test_population_counts_each_person_once_in_their_last_cell(sim: Callable[..., Row]) -> None:
    rows = [sim("p1", A, W0 + 5, "a"), sim("p1", B, W0 + 9, "b"), sim("p2", A, W0 + 1, "c")]
    part = close_window(W0, 0, rows, [], [], Carry(), cfg())
    base = part.cells[8]
    assert base[A]["population.persons"] == (1, 1, 1)
    assert base[B]["population.persons"] == (1, 1, 1)
    assert base[A]["population.persons|gender=F"] == (1, 1, 1)
    assert part.flows == [(parent_of(A, 6), parent_of(B, 6), "movement", 1)]


def test_payments_sum_amounts_in_fen_and_track_the_top_payer() -> None:
    pays: list[Row] = [
        (W0, "1", "p1", A, "food", 1050, "east"),
        (W0 + 1, "2", "p1", A, "food", 50, "east"),
        (W0 + 2, "3", "p2", A, "retail", 300, "north"),
    ]
    part = close_window(W0, 0, [], pays, [], Carry(), cfg())
    stats = part.cells[8][A]
    assert stats["payments.amount_cny"] == (1400, 2, 1100)
    assert stats["payments.count"] == (3, 2, 2)
    assert stats["payments.count|category=food"] == (2, 1, 2)
    assert stats["payments.amount_cny|origin=north"] == (300, 1, 300)
    assert part.cells[6][parent_of(A, 6)]["payments.amount_cny"] == (1400, 2, 1100)


@pytest.mark.parametrize(("limit", "expected_count"), [(None, 3), (1, 1), (2, 2)])
def test_dp_bound_keeps_the_earliest_events_per_person(limit: int | None, expected_count: int) -> None:
    pays: list[Row] = [(W0 + i, str(i), "p1", A, "food", 100, "east") for i in (3, 1, 2)]
    config = cfg(dp_enabled=True, max_contributions_per_window=limit) if limit else cfg()
    part = close_window(W0, 0, [], pays, [], Carry(), config)
    assert part.cells[8][A]["payments.count"][0] == expected_count


@pytest.mark.parametrize(
    ("gap_ms", "dest", "flows"),
    [(60_000, B, 1), (60_000, A, 0), (3 * 3_600_000, B, 0)],  # a trip; same cell; older than the TTL
)
def test_transit_flow_pairs_tap_out_with_last_tap_in(gap_ms: int, dest: str, flows: int) -> None:
    carry = Carry()
    tap_in: Row = (W0, "i", "p1", A, "in", "metro", "L1")
    close_window(W0, 0, [], [], [tap_in], carry, cfg())
    out_ts = W0 + gap_ms
    w = out_ts - out_ts % 60_000
    tap_out: Row = (out_ts, "o", "p1", dest, "out", "metro", "L1")
    part = close_window(w, 0, [], [], [tap_out], carry, cfg())
    assert len([f for f in part.flows if f[2] == "transit"]) == flows
    assert part.cells[8][dest]["transit.tap_out|line=L1"] == (1, 1, 1)
