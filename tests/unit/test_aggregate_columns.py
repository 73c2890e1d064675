"""The columnar engine: delta bytes round-trip, partials independent of arrival order, ties, the carry,
and state of an older layout refused with the fix."""

from __future__ import annotations

import random

import h3
import msgspec
import numpy as np
import pytest

from cityscreen.aggregate.close import AggConfig, Carry, close_chunks
from cityscreen.aggregate.codec import delta_chunks, encode_chunk
from cityscreen.aggregate.partition import PartitionState, StateFormatError
from cityscreen.aggregate.rows import EMPTY, Chunk
from cityscreen.geo import cell_for, parent_of
from cityscreen.settings import Settings
from tests.support.streams_support import ONE_WINDOW, Row, person_key, rows_chunk, set_positions

W0 = 1_767_225_600_000
CFG = AggConfig.from_settings(Settings(window=ONE_WINDOW))
CELLS = [cell_for(22.50 + 0.01 * i, 114.00 + 0.013 * j, 8) for i in range(6) for j in range(6)]


def _rows(seed: int = 3, persons: int = 40) -> tuple[list[Row], list[Row], list[Row]]:
    """SIM, payment and transit rows of one window; persons repeat, and many rows share a time, but
    never a person's two rows of one kind (arrival order breaks those ties)."""
    rnd = random.Random(seed)
    sims: list[Row] = []
    pays: list[Row] = []
    taps: list[Row] = []
    seen: set[tuple[str, int, str]] = set()
    for n in range(400):
        ts = W0 + rnd.randrange(0, 60_000, 500)
        person = f"{rnd.randrange(persons):020x}"
        cell = rnd.choice(CELLS)
        if (person, ts, "sim") not in seen:
            seen.add((person, ts, "sim"))
            sims.append((ts, person, cell, rnd.choice("FM"), rnd.choice(["18-24", "25-34"]),
                         rnd.choice(["east", "north", "central"])))  # fmt: skip
        if n % 3 == 0 and (person, ts, "pay") not in seen:
            seen.add((person, ts, "pay"))
            pays.append((ts, person, cell, rnd.choice(["food", "retail"]), rnd.randrange(1, 50_000), "east"))
        if n % 5 == 0 and (person, ts, "tap") not in seen:
            seen.add((person, ts, "tap"))
            taps.append((ts, person, cell, rnd.choice(["in", "out"]), "metro", "L1"))
    return sims, pays, taps


def _same(a: Chunk, b: Chunk) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a.arrays(), b.arrays(), strict=True))


@pytest.mark.parametrize("kind", ["sim", "payment", "transit"])
def test_delta_chunks_round_trip(kind: str) -> None:
    w = W0 + 60_000
    rnd = random.Random(5)
    rows = [
        (w + i * 37, f"person{i % 50}", cell_for(22.0 + i * 0.003, 114.0, 8),  # more than 255 distinct
         rnd.choice(["F", "M", "food", "in"]), i * 100 if kind == "payment" else rnd.choice(["a", "b"]),
         rnd.choice(["east", "L1", "L2"]))
        for i in range(600)
    ]  # fmt: skip
    chunk = rows_chunk(kind, rows)
    wire = msgspec.msgpack.decode(msgspec.msgpack.encode({"chunks": [encode_chunk(kind, w, chunk)]}))
    [(got_kind, got_w, got)] = list(delta_chunks(wire))
    assert (got_kind, got_w) == (kind, w) and _same(got, chunk)


def test_a_partial_does_not_depend_on_the_arrival_order() -> None:
    sims, pays, taps = _rows()
    parts, carries = [], []
    for shuffle_seed in (None, 1, 2):
        rows = [list(sims), list(pays), list(taps)]
        if shuffle_seed is not None:
            for r in rows:
                random.Random(shuffle_seed).shuffle(r)
        carry = Carry()
        # persons seen before the window (some of them not in it: they count as present all the same)
        carried = [(f"{i:020x}", CELLS[i % 7], W0 - 1000) for i in range(0, 45, 3)]
        set_positions(carry, carried, ("M", "35-44", "north"))
        chunks = [rows_chunk(k, r) for k, r in zip(("sim", "payment", "transit"), rows, strict=True)]
        sim_chunk, payment_chunk, transit_chunk = chunks
        closed = close_chunks(W0, 0, sim_chunk, payment_chunk, transit_chunk, carry, CFG)
        parts.append(msgspec.msgpack.encode(closed))
        carries.append((carry.positions.as_dict(), carry.open_trip.as_dict()))
    assert parts[0] == parts[1] == parts[2]
    assert carries[0] == carries[1] == carries[2]
    assert len({r[1] for r in sims}) < len(sims)  # persons with several events were exercised
    assert any(f[2] == "movement" for f in msgspec.msgpack.decode(parts[0])[3])


def test_a_tie_on_time_goes_to_the_later_arrival() -> None:
    a, b = CELLS[0], CELLS[20]
    rows = [(W0 + 5, "p1", a, "M", "18-24", "north"), (W0 + 5, "p1", b, "F", "25-34", "east")]
    part = close_chunks(W0, 0, rows_chunk("sim", rows), EMPTY, EMPTY, Carry(), CFG)
    assert part.cells[8][b]["population.persons|gender=F"] == (1, 1, 1)
    assert a not in part.cells[8]


def test_a_payer_in_several_cells_is_one_person_in_the_parent() -> None:
    a, b = CELLS[0], CELLS[1]
    assert parent_of(a, 6) == parent_of(b, 6)
    rows = [(W0, "p1", a, "food", 100, "east"), (W0 + 1, "p1", b, "retail", 700, "east"),
            (W0 + 2, "p2", b, "food", 300, "east")]  # fmt: skip
    pays = rows_chunk("payment", rows)
    stats = close_chunks(W0, 0, EMPTY, pays, EMPTY, Carry(), CFG).cells[6][parent_of(a, 6)]
    assert stats["payments.amount_cny"] == (1100, 2, 800)
    assert stats["payments.count|category=food"] == (2, 2, 1)


def test_a_stale_carry_entry_makes_no_flow_and_is_pruned() -> None:
    ttl = CFG.trip_ttl_ms
    assert CFG.presence_ttl_ms <= ttl  # the defaults: a position past the trip TTL is stale for both
    old = W0 - ttl - 1
    origin = np.array([h3.str_to_int(parent_of(CELLS[0], 6))], np.uint64)
    carry = Carry()
    set_positions(carry, [("p1", CELLS[0], old)], ("F", "25-34", "east"))
    carry.open_trip.upsert(np.array([person_key("p2")], np.uint64), origin, np.array([old]))
    for table in (carry.positions, carry.open_trip):
        table.oldest_ms = old + ttl  # as if recently scanned: no prune yet
    far = CELLS[35]
    sims = rows_chunk("sim", [(W0 + 1, "p1", far, "F", "25-34", "east")])
    taps = rows_chunk("transit", [(W0 + 1, "p2", far, "out", "metro", "L1")])
    part = close_chunks(W0, 0, sims, EMPTY, taps, carry, CFG)
    assert part.flows == []
    set_positions(carry, [("p3", CELLS[0], old)], ("F", "25-34", "east"))
    carry.positions.oldest_ms = None  # unknown: the next prune scans
    carry.prune(W0 + 60_000, ttl, CFG.positions_from_ms(W0))
    kept = carry.positions.as_dict()
    assert person_key("p3") not in kept and person_key("p1") in kept


def test_state_of_an_older_layout_is_refused_with_the_fix() -> None:
    row = [W0 + 1, "e1", "ab" * 10, CELLS[0], "F", "25-34", "east"]
    old = msgspec.msgpack.encode(
        {"rows": [["sim", W0, row]], "late": {W0: 2}, "wm": {"sim": W0 + 1}, "off": {"sim": 4}}
    )
    with pytest.raises(StateFormatError, match="cityscreen worker --group"):
        PartitionState.restore(0, CFG, None, [old])


def test_a_carry_delta_of_an_older_layout_is_refused_with_the_fix() -> None:
    """Format 2 carried flow cells and no position: restoring it would lose everyone present."""
    snapshot = PartitionState(0, CFG)
    snapshot.closed_through_ms = W0
    old_carry = msgspec.msgpack.encode(
        {"p": b"", "last": [b"", b"", b"", 0, b""], "trip": [b"", b"", b"", 0, b""]}
    )
    with pytest.raises(
        StateFormatError, match=r"carry delta of an older layout \(format 2, this version reads 3\)"
    ):
        PartitionState.restore(0, CFG, snapshot.snapshot(), [], [(W0, old_carry)])
    fresh = Carry()
    restored = PartitionState.restore(0, CFG, snapshot.snapshot(), [], [(W0, fresh.take_delta())])
    assert len(restored.carry.positions) == 0
