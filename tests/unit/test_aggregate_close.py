"""Closing one window: the counting rules, table-driven on hand-made rows."""

from __future__ import annotations

import pytest

from cityscreen.aggregate.close import AggConfig, Carry, close_chunks
from cityscreen.aggregate.rows import EMPTY
from cityscreen.geo import cell_for, parent_of
from cityscreen.settings import Settings
from tests.support.streams_support import ONE_WINDOW, Row, rows_chunk

A = cell_for(22.5431, 114.0579, 8)
B = cell_for(22.6431, 114.2579, 8)  # far enough to be another flow cell
W0 = 1_767_225_600_000


def cfg(**privacy: object) -> AggConfig:
    return AggConfig.from_settings(Settings(privacy=privacy, window=ONE_WINDOW))


def sim(person: str = "p1", cell: str = A, ts: int = W0, gender: str = "F") -> Row:
    return (ts, person, cell, gender, "25-34", "east")


def test_population_counts_each_person_once_in_their_last_cell() -> None:
    rows = rows_chunk("sim", [sim("p1", B, W0 + 9), sim("p1", A, W0 + 5), sim("p2", A, W0 + 1)])
    part = close_chunks(W0, 0, rows, EMPTY, EMPTY, Carry(), cfg())
    base = part.cells[8]
    assert base[A]["population.persons"] == (1, 1, 1)
    assert base[B]["population.persons"] == (1, 1, 1)
    assert base[A]["population.persons|gender=F"] == (1, 1, 1)
    assert part.flows == [(parent_of(A, 6), parent_of(B, 6), "movement", 1)]


def test_payments_sum_amounts_in_fen_and_track_the_top_payer() -> None:
    pays = rows_chunk("payment", [
        (W0, "p1", A, "food", 1050, "east"),
        (W0 + 1, "p1", A, "food", 50, "east"),
        (W0 + 2, "p2", A, "retail", 300, "north"),
    ])  # fmt: skip
    part = close_chunks(W0, 0, EMPTY, pays, EMPTY, Carry(), cfg())
    stats = part.cells[8][A]
    assert stats["payments.amount_cny"] == (1400, 2, 1100)
    assert stats["payments.count"] == (3, 2, 2)
    assert stats["payments.count|category=food"] == (2, 1, 2)
    assert stats["payments.amount_cny|origin=north"] == (300, 1, 300)
    assert part.cells[6][parent_of(A, 6)]["payments.amount_cny"] == (1400, 2, 1100)


@pytest.mark.parametrize(("limit", "expected_count"), [(None, 3), (1, 1), (2, 2)])
def test_dp_bound_keeps_the_earliest_events_per_person(limit: int | None, expected_count: int) -> None:
    pays = rows_chunk("payment", [(W0 + i, "p1", A, "food", 100 * i, "east") for i in (3, 1, 2)])
    config = cfg(dp_enabled=True, max_contributions_per_window=limit) if limit else cfg()
    part = close_chunks(W0, 0, EMPTY, pays, EMPTY, Carry(), config)
    assert part.cells[8][A]["payments.count"][0] == expected_count
    # the earliest: amounts 100, then 200, then 300
    assert part.cells[8][A]["payments.amount_cny"][0] == sum(range(100, 100 * expected_count + 1, 100))


@pytest.mark.parametrize(
    ("gap_ms", "dest", "flows"),
    [(60_000, B, 1), (60_000, A, 0), (3 * 3_600_000, B, 0)],  # a trip; same cell; older than the TTL
)
def test_transit_flow_pairs_tap_out_with_last_tap_in(gap_ms: int, dest: str, flows: int) -> None:
    carry = Carry()
    tap_in = rows_chunk("transit", [(W0, "p1", A, "in", "metro", "L1")])
    close_chunks(W0, 0, EMPTY, EMPTY, tap_in, carry, cfg())
    out_ts = W0 + gap_ms
    w = out_ts - out_ts % 60_000
    tap_out = rows_chunk("transit", [(out_ts, "p1", dest, "out", "metro", "L1")])
    part = close_chunks(w, 0, EMPTY, EMPTY, tap_out, carry, cfg())
    assert len([f for f in part.flows if f[2] == "transit"]) == flows
    assert part.cells[8][dest]["transit.tap_out|line=L1"] == (1, 1, 1)


def test_a_second_tap_out_has_no_open_trip_and_a_later_tap_in_replaces_the_first() -> None:
    taps = rows_chunk("transit", [
        (W0 + 1, "p1", A, "in", "metro", "L1"),
        (W0 + 2, "p1", B, "out", "metro", "L1"),
        (W0 + 3, "p1", A, "out", "metro", "L1"),  # no open trip: no flow B -> A
        (W0 + 4, "p2", B, "in", "metro", "L1"),
        (W0 + 5, "p2", A, "in", "metro", "L1"),  # replaces the tap-in at B
        (W0 + 6, "p2", B, "out", "metro", "L1"),
    ])  # fmt: skip
    carry = Carry()
    part = close_chunks(W0, 0, EMPTY, EMPTY, taps, carry, cfg())
    a6, b6 = parent_of(A, 6), parent_of(B, 6)
    assert part.flows == sorted([(a6, b6, "transit", 2)])
    assert len(carry.open_trip) == 0  # both trips ended
