"""The columnar engine: delta bytes round-trip, partials independent of arrival order, ties, the carry."""

from __future__ import annotations

import random
from collections.abc import Callable

import msgspec
import pytest

from cityscreen.geo import cell_for, parent_of
from cityscreen.settings import Settings
from streams.aggregate.close import AggConfig, Carry, close_window
from streams.aggregate.codec import delta_chunks, encode_chunk
from streams.aggregate.partition import PartitionState
from streams.aggregate.rows import Row

W0 = 1_767_225_600_000
CFG = AggConfig.from_settings(Settings())
CELLS = [cell_for(22.50 + 0.01 * i, 114.00 + 0.013 * j, 8) for i in range(6) for j in range(6)]


@pytest.fixture
def make_rows() -> Callable[..., tuple[list[Row], list[Row], list[Row]]]:
    """SIM, payment and transit rows of one window; persons repeat and many rows share a time."""

    def make(seed: int = 3, persons: int = 40) -> tuple[list[Row], list[Row], list[Row]]:
        rnd = random.Random(seed)
        sims, pays, taps = [], [], []
        for n in range(400):
            ts = W0 + rnd.randrange(0, 60_000, 500)  # coarse times: many ties, broken by event id
            person = f"{rnd.randrange(persons):020x}"
            cell = rnd.choice(CELLS)
            sims.append((ts, f"s{n}", person, cell, rnd.choice("FM"), rnd.choice(["18-24", "25-34"]),
                         rnd.choice(["east", "north", "central"])))  # fmt: skip
            if n % 3 == 0:
                pays.append((ts, f"p{n}", person, cell, rnd.choice(["food", "retail"]),
                             rnd.randrange(1, 50_000), "east"))  # fmt: skip
            if n % 5 == 0:
                taps.append((ts, f"t{n}", person, cell, rnd.choice(["in", "out"]), "metro", "L1"))
        return sims, pays, taps

    return make


@pytest.mark.parametrize(
    "person", [lambda i: f"{i * 7919:020x}", lambda i: f"p{i}", lambda i: f"{i:020X}", lambda i: f"{i:019x} "]
)
def test_delta_columns_round_trip(person: Callable[[int], str]) -> None:
    w = W0 + 60_000
    cols = [
        [w + i * 37 for i in range(600)],
        [f"e{i}" for i in range(600)],
        [person(i) for i in range(600)],
        [cell_for(22.0 + i * 0.003, 114.0, 9) for i in range(600)],  # more than 255 distinct
        ["F", "M"] * 300,
        list(range(600)),
        ["east"] * 600,
    ]
    for kind in ("sim", "payment", "transit"):
        wire = msgspec.msgpack.decode(msgspec.msgpack.encode({"chunks": [encode_chunk(kind, w, cols)]}))
        assert [(k, got_w, got) for k, got_w, got in delta_chunks(wire)] == [(kind, w, cols)]


def test_a_partial_does_not_depend_on_the_arrival_order(
    make_rows: Callable[..., tuple[list[Row], list[Row], list[Row]]],
) -> None:
    sims, pays, taps = make_rows()
    parts, carries = [], []
    for shuffle_seed in (None, 1, 2):
        rows = [list(sims), list(pays), list(taps)]
        if shuffle_seed is not None:
            for r in rows:
                random.Random(shuffle_seed).shuffle(r)
        carry = Carry({f"{i:020x}": (parent_of(CELLS[i % 7], 6), W0 - 1000) for i in range(0, 40, 3)})
        parts.append(msgspec.msgpack.encode(close_window(W0, 0, rows[0], rows[1], rows[2], carry, CFG)))
        carries.append((carry.last_cell, carry.open_trip))
    assert parts[0] == parts[1] == parts[2]
    assert carries[0] == carries[1] == carries[2]
    assert len({r[2] for r in sims}) < len(sims)  # persons with several events were exercised


def test_a_tie_on_time_goes_to_the_larger_event_id() -> None:
    a, b = CELLS[0], CELLS[20]
    rows: list[Row] = [
        (W0 + 5, "b", "p1", b, "F", "25-34", "east"),
        (W0 + 5, "a", "p1", a, "M", "18-24", "north"),
    ]
    part = close_window(W0, 0, rows, [], [], Carry(), CFG)
    assert part.cells[8][b]["population.persons|gender=F"] == (1, 1, 1)
    assert a not in part.cells[8]


def test_a_payer_in_several_cells_is_one_person_in_the_parent() -> None:
    a, b = CELLS[0], CELLS[1]
    assert parent_of(a, 6) == parent_of(b, 6)
    pays: list[Row] = [(W0, "1", "p1", a, "food", 100, "east"), (W0 + 1, "2", "p1", b, "retail", 700, "east"),
                       (W0 + 2, "3", "p2", b, "food", 300, "east")]  # fmt: skip
    stats = close_window(W0, 0, [], pays, [], Carry(), CFG).cells[6][parent_of(a, 6)]
    assert stats["payments.amount_cny"] == (1100, 2, 800)
    assert stats["payments.count|category=food"] == (2, 2, 1)


def test_a_stale_carry_entry_makes_no_flow_and_is_pruned() -> None:
    ttl = CFG.trip_ttl_ms
    old = W0 - ttl - 1
    carry = Carry({"p1": (parent_of(CELLS[0], 6), old)}, {"p2": (parent_of(CELLS[0], 6), old)})
    carry.oldest_ms = old + ttl  # as if recently scanned: no prune yet
    far = CELLS[35]
    sims: list[Row] = [(W0 + 1, "s", "p1", far, "F", "25-34", "east")]
    taps: list[Row] = [(W0 + 1, "t", "p2", far, "out", "metro", "L1")]
    part = close_window(W0, 0, sims, [], taps, carry, CFG)
    assert part.flows == []
    carry.last_cell["p3"] = (parent_of(far, 6), old)
    carry.oldest_ms = None  # unknown: the next prune scans
    carry.prune(W0 + 60_000, ttl)
    assert "p3" not in carry.last_cell and "p1" in carry.last_cell


def test_a_delta_written_before_the_columns_is_restored() -> None:
    row = [W0 + 1, "e1", "ab" * 10, CELLS[0], "F", "25-34", "east"]
    old = msgspec.msgpack.encode(
        {"rows": [["sim", W0, row]], "late": {W0: 2}, "wm": {"sim": W0 + 1}, "off": {"sim": 4}}
    )
    st = PartitionState.restore(0, CFG, None, [old])
    assert st.windows[W0].rows["sim"] == [tuple(row)]
    assert st.windows[W0].late_events == 2
    assert st.applied_offset == {"sim": 4}
