"""Origin-destination flows of one window, and the per-person state they carry across windows.

Transit pairs a tap-out with the same person's last tap-in; movement pairs a person's consecutive SIM
cells (at `flow_res`). A flow counts in the window of its later event, a person counts once per (origin,
dest) pair, and same-cell pairs are not flows. With a contribution limit, a person adds at most that many
distinct pairs per kind per window, the earliest ones. A person's rows are taken in (time, arrival)
order.

Everything is computed on sorted arrays: rows sorted by (person, time), each row's predecessor is the
row before it or, for a person's first row, the carried entry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np

from streams.aggregate.codec import index_dtype as _index_dtype
from streams.aggregate.rows import VOCAB, Chunk, parent_ids, rank_in_run, run_ends, run_starts

_ENC = msgspec.msgpack.Encoder()
_DEC = msgspec.msgpack.Decoder()
_U64, _I64 = np.uint64, np.int64


@dataclass
class PersonTable:
    """Per-person (cell, time) entries, sorted by person key."""

    keys: np.ndarray = field(default_factory=lambda: np.empty(0, _U64))
    cell: np.ndarray = field(default_factory=lambda: np.empty(0, _U64))
    ts: np.ndarray = field(default_factory=lambda: np.empty(0, _I64))

    def __len__(self) -> int:
        return len(self.keys)

    def _find(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        idx = np.searchsorted(self.keys, keys)
        found = idx < len(self.keys)
        found[found] = self.keys[idx[found]] == keys[found]
        return idx, found

    def lookup(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(found, cell, ts) of each key (cell and ts are 0 where not found)."""
        idx, found = self._find(keys)
        at = idx[found]
        cell, ts = np.zeros(len(keys), _U64), np.zeros(len(keys), _I64)
        cell[found], ts[found] = self.cell[at], self.ts[at]
        return found, cell, ts

    def upsert(self, keys: np.ndarray, cell: np.ndarray, ts: np.ndarray) -> None:
        """Set the entries of distinct, sorted `keys`."""
        idx, found = self._find(keys)
        self.cell[idx[found]], self.ts[idx[found]] = cell[found], ts[found]
        new = ~found
        if new.any():
            at = idx[new]
            self.keys = np.insert(self.keys, at, keys[new])
            self.cell = np.insert(self.cell, at, cell[new])
            self.ts = np.insert(self.ts, at, ts[new])

    def remove(self, keys: np.ndarray) -> None:
        idx, found = self._find(keys)
        if found.any():
            gone = idx[found]
            self.keys, self.cell, self.ts = (np.delete(a, gone) for a in (self.keys, self.cell, self.ts))

    def keep(self, mask: np.ndarray) -> None:
        self.keys, self.cell, self.ts = self.keys[mask], self.cell[mask], self.ts[mask]

    def as_dict(self) -> dict[int, tuple[int, int]]:
        """key -> (cell, ts), for tests and diagnostics."""
        return dict(
            zip(self.keys.tolist(), zip(self.cell.tolist(), self.ts.tolist(), strict=True), strict=True)
        )


@dataclass
class Carry:
    """Per-person state that spans windows: last SIM flow cell and open trip, each with its time."""

    last_cell: PersonTable = field(default_factory=PersonTable)
    open_trip: PersonTable = field(default_factory=PersonTable)
    # a lower bound of every time in the carry (None: unknown), so that pruning scans rarely
    oldest_ms: int | None = field(default=None, compare=False)
    _touched: list[np.ndarray] = field(default_factory=list, compare=False)

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
        for table in (self.last_cell, self.open_trip):
            table.keep(now_ms - table.ts <= ttl_ms)
            if len(table):
                oldest = min(oldest, int(table.ts.min()))
        self.oldest_ms = oldest

    def take_delta(self) -> bytes:
        """The entries (or their absence) of every person whose carry changed since the last call.

        Packed, because a close touches about every person of its window: per person the key, a bit
        per table, and for a present entry an index into the delta's distinct cells and its time
        relative to the delta's earliest (entries span at most the trip TTL)."""
        touched = np.unique(np.concatenate(self._touched)) if self._touched else np.empty(0, _U64)
        self._touched = []
        out: dict[str, Any] = {"p": touched.astype("<u8").tobytes()}
        for name, table in (("last", self.last_cell), ("trip", self.open_trip)):
            found, cell, ts = table.lookup(touched)
            cells, index = np.unique(cell[found], return_inverse=True)
            base = int(ts[found].min()) if found.any() else 0
            out[name] = [np.packbits(found).tobytes(), cells.astype("<u8").tobytes(),
                         index.astype(_index_dtype(len(cells))).tobytes(), base,
                         (ts[found] - base).astype("<i4").tobytes()]  # fmt: skip
        return _ENC.encode(out)

    def apply_delta(self, raw: bytes) -> None:
        d = _DEC.decode(raw)
        keys = np.frombuffer(d["p"], "<u8").astype(_U64)
        for name, table in (("last", self.last_cell), ("trip", self.open_trip)):
            bits, cells, index, base, ts = d[name]
            found = np.unpackbits(np.frombuffer(bits, np.uint8), count=len(keys)).astype(np.bool_)
            uniq = np.frombuffer(cells, "<u8").astype(_U64)
            cell = uniq[np.frombuffer(index, _index_dtype(len(uniq)))]
            table.upsert(keys[found], cell, np.frombuffer(ts, "<i4").astype(_I64) + base)
            table.remove(keys[~found])
        self.oldest_ms = None

    def mark(self, keys: np.ndarray) -> None:
        self._touched.append(keys)


def _sorted(chunk: Chunk, order: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Row order by (person, time, arrival) unless given, and which sorted rows are a person's first."""
    if order is None:
        order = np.lexsort((chunk.ts, chunk.person))
    return order, run_starts(chunk.person[order])


class _Candidates:
    """Flow candidates (origin, dest, person) of one kind, each person's in time order."""

    def __init__(self) -> None:
        self.parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def add(self, origin: np.ndarray, dest: np.ndarray, person: np.ndarray) -> None:
        keep = origin != dest
        self.parts.append((origin[keep], dest[keep], person[keep]))

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
    out: list[tuple[int, int, str, int]] = []
    for first_ms in (sims.ts.min() if len(sims) else None, transits.ts.min() if len(transits) else None):
        if first_ms is not None:
            carry.touch(int(first_ms))
    if len(transits):
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
        cands = _Candidates()
        cands.add(o_cell[trip], fcell[trip], person[trip])
        out += [(o, d, "transit", n) for o, d, n in cands.counts(limit)]
        last = run_ends(first)
        still_open = last & is_in
        carry.open_trip.upsert(person[still_open], fcell[still_open], ts[still_open])
        carry.open_trip.remove(person[last & ~is_in])
        carry.mark(person[first])
    if len(sims):
        order, first = _sorted(sims, sim_order)
        person, ts = sims.person[order], sims.ts[order]
        fcell = parent_ids(sims.cell[order], flow_res)
        found, c_cell, c_ts = carry.last_cell.lookup(person[first])
        has, p_cell, p_ts = np.ones(len(order), np.bool_), np.empty_like(fcell), np.empty_like(ts)
        p_cell[1:], p_ts[1:] = fcell[:-1], ts[:-1]
        has[first], p_cell[first], p_ts[first] = found, c_cell, c_ts
        move = has & (ts - p_ts <= ttl_ms)
        cands = _Candidates()
        cands.add(p_cell[move], fcell[move], person[move])
        out += [(o, d, "movement", n) for o, d, n in cands.counts(limit)]
        last = run_ends(first)
        carry.last_cell.upsert(person[last], fcell[last], ts[last])
        carry.mark(person[first])
    return out
