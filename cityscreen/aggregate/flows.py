"""Origin-destination flows of one window; the per-person state they carry across windows (open trips,
last known positions) is `cityscreen/aggregate/carry.py`.

Transit pairs a tap-out with the same person's last tap-in; movement pairs a person's consecutive known
positions (their SIM cells, at `flow_res`). A flow counts in the window of its later event, a person
counts once per (origin, dest) pair, and same-cell pairs are not flows. With a contribution limit, a
person adds at most that many distinct pairs per kind per window, the earliest ones. A person's rows are
taken in (time, arrival) order.

Everything is computed on sorted arrays: rows sorted by (person, time), each row's predecessor is the
row before it or, for a person's first row, the carried entry.
"""

from __future__ import annotations

import numpy as np

from cityscreen.aggregate.carry import Carry
from cityscreen.aggregate.rows import VOCAB, Chunk, parent_ids, rank_in_run, run_ends, run_starts
from cityscreen.aggregate.tables import CELL_IDS, profile_codes

__all__ = ["Candidates", "Carry", "movement_candidates", "transit_flows", "window_flows"]

_I64 = np.int64


def _sorted(chunk: Chunk, order: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Row order by (person, time, arrival) unless given, and which sorted rows are a person's first."""
    if order is None:
        order = np.lexsort((chunk.ts, chunk.person))
    return order, run_starts(chunk.person[order])


class Candidates:
    """Flow candidates (origin, dest, person) of one kind, each person's in time order. Those of a longer
    flow window are the candidates of its base windows, joined in window order (`join`)."""

    def __init__(self) -> None:
        self.parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def add(self, origin: np.ndarray, dest: np.ndarray, person: np.ndarray) -> None:
        keep = origin != dest
        self.parts.append((origin[keep], dest[keep], person[keep]))

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(origin, dest, person) columns, uint64."""
        if not self.parts:
            return np.empty(0, np.uint64), np.empty(0, np.uint64), np.empty(0, np.uint64)
        o, d, p = (np.concatenate(cols) for cols in zip(*self.parts, strict=True))
        return o.astype(np.uint64), d.astype(np.uint64), p.astype(np.uint64)

    @staticmethod
    def join(parts: list[Candidates]) -> Candidates:
        """Candidates of consecutive windows as one, each person's together and still in time order
        (`counts` takes a person's earliest pairs from their run)."""
        joined = Candidates()
        for c in parts:
            joined.parts.extend(c.parts)
        o, d, p = joined.arrays()
        order = np.argsort(p, kind="stable")
        out = Candidates()
        out.parts.append((o[order], d[order], p[order]))
        return out

    def __len__(self) -> int:
        return sum(len(o) for o, _, _ in self.parts)

    def counts(self, limit: int | None) -> list[tuple[int, int, int]]:
        """(origin, dest, distinct persons), a person counted once per pair and at most `limit` pairs."""
        if not self.parts:
            return []
        o, d, p = (np.concatenate(cols) for cols in zip(*self.parts, strict=True))
        if not len(o):
            return []
        cells, inv = np.unique(np.concatenate([o, d]), return_inverse=True)
        oi, di = inv[: len(o)].astype(_I64), inv[len(o) :].astype(_I64)
        _, pi = np.unique(p, return_inverse=True)
        pair = oi * len(cells) + di
        _, first = np.unique(pair * (int(pi.max()) + 1) + pi, return_index=True)
        first.sort()  # each (pair, person) once, at its earliest candidate
        if limit is not None:
            first = first[rank_in_run(run_starts(pi[first])) < limit]
        pairs, n = np.unique(pair[first], return_counts=True)
        out = []
        for k, count in zip(pairs.tolist(), n.tolist(), strict=True):
            out.append((int(cells[k // len(cells)]), int(cells[k % len(cells)]), count))
        return out


def window_flows(
    sims: Chunk,
    sim_order: np.ndarray,
    transits: Chunk,
    carry: Carry,
    flow_res: int,
    ttl_ms: int,
    limit: int | None,
) -> list[tuple[int, int, str, int]]:
    """The window's flows as (origin, dest, kind, persons) with 64-bit cells; updates `carry`.
    `sim_order`: the SIM rows by person, then time, then arrival."""
    out = transit_flows(transits, carry, flow_res, ttl_ms, limit)
    moves = movement_candidates(sims, sim_order, carry, flow_res, ttl_ms)
    return out + [(o, d, "movement", n) for o, d, n in moves.counts(limit)]


def transit_flows(
    transits: Chunk, carry: Carry, flow_res: int, ttl_ms: int, limit: int | None
) -> list[tuple[int, int, str, int]]:
    """Transit flows of a flow window's tap rows (a base window's, or a longer one's); updates the
    carried open trips."""
    if not len(transits):
        return []
    carry.touch(int(transits.ts.min()))
    order, first = _sorted(transits)
    person, ts = transits.person[order], transits.ts[order]
    fcell = parent_ids(transits.cell[order], flow_res)
    is_in = transits.a[order] == VOCAB.code("in")
    found, c_cell, c_ts = carry.open_trip.lookup(person[first])
    # the open trip before each row: the row before, if it was a tap-in; for a person's first row,
    # the carried trip
    has, o_cell, o_ts = np.empty_like(is_in), np.empty_like(fcell), np.empty_like(ts)
    has[1:], o_cell[1:], o_ts[1:] = is_in[:-1], fcell[:-1], ts[:-1]
    has[first], o_cell[first], o_ts[first] = found, c_cell, c_ts
    trip = ~is_in & has & (ts - o_ts <= ttl_ms)
    cands = Candidates()
    cands.add(o_cell[trip], fcell[trip], person[trip])
    last = run_ends(first)
    still_open = last & is_in
    carry.open_trip.upsert(person[still_open], fcell[still_open], ts[still_open])
    carry.open_trip.remove(person[last & ~is_in])
    carry.mark(person[first])
    return [(o, d, "transit", n) for o, d, n in cands.counts(limit)]


def movement_candidates(
    sims: Chunk, sim_order: np.ndarray, carry: Carry, flow_res: int, ttl_ms: int
) -> Candidates:
    """A base window's movement candidates; moves each person's position to their last SIM row."""
    if not len(sims):
        return Candidates()
    carry.touch(int(sims.ts.min()))
    return _movement(sims, sim_order, carry, flow_res, ttl_ms)


def _movement(sims: Chunk, sim_order: np.ndarray, carry: Carry, flow_res: int, ttl_ms: int) -> Candidates:
    """Movement flows from consecutive known positions: a person's first SIM row of the window pairs
    with their carried position, then each row with the one before. Then each person's last row
    becomes their position (cell, time and profile), which is also what people present count."""
    order, first = _sorted(sims, sim_order)
    person, ts = sims.person[order], sims.ts[order]
    fcell = parent_ids(sims.cell[order], flow_res)
    found, c_ids, c_ts = carry.positions.lookup(person[first])
    c_cell = np.zeros(len(c_ids), np.uint64)
    c_cell[found] = parent_ids(CELL_IDS.values[c_ids[found]], flow_res)
    has, p_cell, p_ts = np.ones(len(order), np.bool_), np.empty_like(fcell), np.empty_like(ts)
    p_cell[1:], p_ts[1:] = fcell[:-1], ts[:-1]
    has[first], p_cell[first], p_ts[first] = found, c_cell, c_ts
    move = has & (ts - p_ts <= ttl_ms)
    cands = Candidates()
    cands.add(p_cell[move], fcell[move], person[move])
    last = order[run_ends(first)]
    profile = profile_codes(sims.a[last], sims.b[last], sims.c[last])
    carry.positions.upsert(sims.person[last], CELL_IDS.codes(sims.cell[last]), sims.ts[last], profile)
    carry.mark(person[first])
    return cands
