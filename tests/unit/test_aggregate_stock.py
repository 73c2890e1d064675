"""People present as a stock (each person at their last known position, within the presence TTL) and
active persons (a SIM event in the window): the rule, table-driven on hand-made rows."""

from __future__ import annotations

import pytest

from cityscreen.aggregate.carry import Carry
from cityscreen.aggregate.close import AggConfig, close_chunks
from cityscreen.aggregate.partial import Partial
from cityscreen.aggregate.partition import PartitionState
from cityscreen.aggregate.rows import EMPTY
from cityscreen.events import SimEvent
from cityscreen.geo import cell_for, parent_of
from cityscreen.settings import Settings
from tests.support.factories import clean_event
from tests.support.streams_support import ONE_WINDOW, Row, batch_of, rows_chunk

A = cell_for(22.5431, 114.0579, 8)
B = cell_for(22.6431, 114.2579, 8)  # another flow cell
W0 = 1_767_225_600_000  # 2026-01-01T00:00Z: a pseudonym period starts here
MIN = 60_000
POP, ACTIVE = "population.persons", "active.persons"


def cfg(**window: object) -> AggConfig:
    return AggConfig.from_settings(Settings(window={**ONE_WINDOW, **window}))


def sim(person: str, cell: str, ts: int, origin: str = "east", gender: str = "F") -> Row:
    return (ts, person, cell, gender, "25-34", origin)


def close(carry: Carry, w: int, *rows: Row, config: AggConfig | None = None) -> Partial:
    sims = rows_chunk("sim", list(rows)) if rows else EMPTY
    return close_chunks(w, 0, sims, EMPTY, EMPTY, carry, config or cfg())


def base(part: Partial, cell: str) -> dict[str, tuple[int, int, int]]:
    return part.cells.get(8, {}).get(cell, {})


def test_a_person_seen_at_eight_still_counts_at_half_past_in_the_same_cell() -> None:
    carry = Carry()
    first = close(carry, W0, sim("p1", A, W0 + 5))
    assert base(first, A)[POP] == (1, 1, 1) and base(first, A)[ACTIVE] == (1, 1, 1)
    later = close(carry, W0 + 30 * MIN, sim("p2", B, W0 + 30 * MIN + 1))  # only p2 is heard
    assert base(later, A)[POP] == (1, 1, 1)
    assert base(later, A)["population.persons|gender=F"] == (1, 1, 1)
    assert ACTIVE not in base(later, A)  # p1 sent nothing in this window
    assert base(later, B)[POP] == base(later, B)[ACTIVE] == (1, 1, 1)
    assert later.cells[6][parent_of(A, 6)][POP] == (1, 1, 1)  # parents are sums of children


def test_a_later_sim_event_moves_the_person_and_takes_its_attributes() -> None:
    carry = Carry()
    close(carry, W0, sim("p1", A, W0 + 5, origin="east"))
    moved = close(carry, W0 + 10 * MIN, sim("p1", B, W0 + 10 * MIN + 7, origin="north"))
    assert A not in moved.cells[8]
    assert base(moved, B)[POP] == (1, 1, 1)
    assert base(moved, B)["population.persons|origin=north"] == (1, 1, 1)
    assert "population.persons|origin=east" not in base(moved, B)
    # movement flows pair the same consecutive known positions
    assert moved.flows == [(parent_of(A, 6), parent_of(B, 6), "movement", 1)]


@pytest.mark.parametrize(
    ("window_start", "present"),
    [
        (W0 + 119 * MIN, True),  # window end - last event = 2 h - 5 ms: within the TTL
        (W0 + 120 * MIN - MIN, True),
        (W0 + 120 * MIN, False),  # window end - last event > 2 h: expired
        (W0 + 180 * MIN, False),
    ],
)
def test_a_position_expires_after_the_presence_ttl(window_start: int, present: bool) -> None:
    config = cfg(presence_ttl_s=7200, trip_ttl_s=7200)
    carry = Carry()
    close(carry, W0, sim("p1", A, W0 + 5), config=config)
    part = close(carry, window_start, sim("p2", B, window_start + 1), config=config)
    assert (A in part.cells[8]) is present


def test_the_ttl_boundary_is_inclusive() -> None:
    config = cfg(presence_ttl_s=3600)
    carry = Carry()
    close(carry, W0, sim("p1", A, W0), config=config)
    at_ttl = close(carry, W0 + 59 * MIN, config=config)  # end - ts = exactly 3600 s
    assert base(at_ttl, A)[POP] == (1, 1, 1)
    assert close(carry, W0 + 60 * MIN, config=config).cells == {}


def test_a_position_from_an_earlier_pseudonym_period_does_not_count() -> None:
    """After a key rotation the same phone has a new pseudonym: carrying the old one would count that
    person twice once they are heard again."""
    config = AggConfig.from_settings(Settings(pseudonym_rotation_s=3600, window=ONE_WINDOW))
    carry = Carry()
    close(carry, W0 + 59 * MIN, sim("p1", A, W0 + 59 * MIN + 10), config=config)
    same_period = close(carry, W0 + 59 * MIN, config=config)  # (the same window again: still there)
    assert base(same_period, A)[POP] == (1, 1, 1)
    assert close(carry, W0 + 60 * MIN, config=config).cells == {}  # the next period


def test_ties_on_time_go_to_the_later_arrival_and_stay_there() -> None:
    carry = Carry()
    close(carry, W0, sim("p1", A, W0 + 5, origin="east"), sim("p1", B, W0 + 5, origin="north"))
    later = close(carry, W0 + 5 * MIN)
    assert A not in later.cells[8]
    assert base(later, B)["population.persons|origin=north"] == (1, 1, 1)


def _sim_event(ts_ms: int, person: str, lat: float = 22.54) -> SimEvent:
    return clean_event(
        "sim", event_id=f"s{ts_ms}{person}", ts_ms=ts_ms, person=person * 10, tower_id="T", lat=lat
    )


def _advance_all(st: PartitionState, ts_ms: int) -> None:
    """Move every topic's watermark (windows close on the slowest one)."""
    pay = clean_event("payment", event_id=f"p{ts_ms}", ts_ms=ts_ms, person="cd" * 10)
    tap = clean_event("transit", event_id=f"t{ts_ms}", ts_ms=ts_ms, person="ef" * 10)
    for kind, ev in (("sim", _sim_event(ts_ms, "ee", lat=22.60)), ("payment", pay), ("transit", tap)):
        st.add_record(kind, st.applied_offset.get(kind, -1) + 1, batch_of(kind, [ev]))


def _present(part: Partial) -> int:
    return sum(stats.get(POP, (0, 0, 0))[0] for stats in part.cells.get(8, {}).values())


def test_a_person_does_not_count_before_their_first_event() -> None:
    """The next window's events arrive before this one closes (the grace): they must not be present in
    this window."""
    st = PartitionState(0, cfg())
    st.add_record("sim", 0, batch_of("sim", [_sim_event(W0 + 1_000, "ab"), _sim_event(W0 + MIN + 1, "cd")]))
    _advance_all(st, W0 + MIN + 40_000)  # W0 is due (end + grace passed), W0 + 1 min is not
    [first] = st.close_due()
    assert first.window_start_ms == W0 and _present(first) == 1
    _advance_all(st, W0 + 2 * MIN + 40_000)
    [second] = st.close_due()
    assert _present(second) == 3  # ab still present, cd heard, and the watermark helper ee


def test_windows_without_rows_still_have_people_present_until_the_ttl() -> None:
    """A partition closes a window it has no rows for as long as someone's position there counts, so the
    merged window is complete; past the TTL (nobody present) such windows are skipped."""
    st = PartitionState(0, cfg(presence_ttl_s=120))
    st.add_record("sim", 0, batch_of("sim", [_sim_event(W0 + 1_000, "ab")]))
    [first] = st.close_due(idle=True)
    st.add_record("sim", 1, batch_of("sim", [_sim_event(W0 + 10 * MIN + 1, "cd")]))
    closed = st.close_due(idle=True)
    # W0 + 1 min: end - ts = 119 s, present; W0 + 2 min: 179 s, expired, nothing until W0 + 10 min
    assert [p.window_start_ms for p in closed] == [W0 + MIN, W0 + 10 * MIN]
    assert _present(closed[0]) == 1 and closed[0].flows == [] and closed[0].late_events == 0
    assert all(ACTIVE not in stats for stats in closed[0].cells[8].values())
    assert _present(first) == 1 and _present(closed[1]) == 1


def test_totals_and_parents_are_exact_sums_of_the_stock() -> None:
    carry = Carry()
    cells = [cell_for(22.50 + 0.01 * i, 114.0 + 0.02 * j, 8) for i in range(4) for j in range(3)]
    for minute in range(6):
        rows = [sim(f"p{n}", cells[(n + minute) % len(cells)], W0 + minute * MIN + n, gender="FM"[n % 2])
                for n in range(minute * 7, minute * 7 + 11)]  # fmt: skip
        part = close(carry, W0 + minute * MIN, *rows)
    assert _present(part) == 46  # persons p0 .. p45, each once
    for res, finer in ((7, 8), (6, 7)):
        for cell, stats in part.cells[res].items():
            children = [s for c, s in part.cells[finer].items() if parent_of(c, res) == cell]
            assert stats[POP][0] == sum(s[POP][0] for s in children)
    for stats in part.cells[8].values():
        assert stats[POP][0] == sum(stats.get(f"{POP}|gender={g}", (0, 0, 0))[0] for g in "FM")
