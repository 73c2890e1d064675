"""Per-person state that spans windows, and its durable deltas.

- `positions`: each person's last known position (latest SIM event: base cell, time, profile). People
  present at a window's end are counted from it (cityscreen/aggregate/stock.py), and movement flows pair a
  person's first SIM event of a window with it (cityscreen/aggregate/flows.py).
- `open_trip`: each person's last tap-in (flow cell, time), paired with their next tap-out.

A close writes the entries of the persons it touched as one delta (`take_delta`), not the whole carry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np

from cityscreen.aggregate.codec import FORMAT, check_format, index_dtype
from cityscreen.aggregate.rows import VOCAB
from cityscreen.aggregate.tables import CELL_IDS, PersonTable, PositionTable, profile_codes, profile_parts

_ENC = msgspec.msgpack.Encoder()
_DEC = msgspec.msgpack.Decoder()
_U64, _I64 = np.uint64, np.int64


@dataclass
class Carry:
    """One partition's per-person state across windows (close its windows in order)."""

    positions: PositionTable = field(default_factory=PositionTable)
    open_trip: PersonTable = field(default_factory=PersonTable)
    _touched: list[np.ndarray] = field(default_factory=list, compare=False)

    def twin(self) -> Carry:
        """A copy for a speculative close (cityscreen/aggregate/partition.py: `speculate`)."""
        return Carry(self.positions.copy(), self.open_trip.copy())

    def pending_from(self, other: Carry) -> None:
        """Take over the changes `other` has not yet written (`take_delta`), before this one's own."""
        self._touched = [*other._touched, *self._touched]

    def touch(self, ts_ms: int) -> None:
        """Entries at or after `ts_ms` are about to be added (keeps each table's oldest bound true)."""
        for table in (self.positions, self.open_trip):
            if table.oldest_ms is not None and ts_ms < table.oldest_ms:
                table.oldest_ms = ts_ms

    def prune(self, now_ms: int, trip_ttl_ms: int, positions_from_ms: int) -> None:
        """Forget open trips older than the trip TTL and positions older than `positions_from_ms` (what
        neither presence nor movement flows can use any more). A scan runs once the oldest entry is a
        quarter of the trip TTL past its cut-off, so memory stays bounded by about 1.25 TTL."""
        slack = trip_ttl_ms // 4
        self.open_trip.prune(now_ms - trip_ttl_ms, slack)
        self.positions.prune(positions_from_ms, slack)

    def mark(self, keys: np.ndarray) -> None:
        self._touched.append(keys)

    def holds_presence(self, since_ms: int) -> bool:
        """Whether any position is at or after `since_ms` (a window with no rows still has people)."""
        newest = self.positions.newest_ms
        return newest is not None and newest >= since_ms

    def take_delta(self) -> bytes:
        """The entries (or their absence) of every person whose carry changed since the last call.

        Packed, because a close touches about every person of its window: per person the key, a bit
        per table, and for a present entry an index into the delta's distinct cells (and profiles) and
        its time relative to the delta's earliest. Entries the carry pruned are not removed here: a
        stale entry and a missing one count the same (every use checks times)."""
        touched = np.unique(np.concatenate(self._touched)) if self._touched else np.empty(0, _U64)
        self._touched = []
        out: dict[str, Any] = {"format": FORMAT, "p": touched.astype("<u8").tobytes()}
        found, cell, ts = self.open_trip.lookup(touched)
        out["trip"] = _pack_entries(found, cell, ts)
        found, cell_ids, ts = self.positions.lookup(touched)
        out["pos"] = _pack_entries(found, CELL_IDS.values[cell_ids[found]], ts[found], packed=True)
        idx = np.searchsorted(self.positions.keys, touched[found])
        profiles, index = np.unique(self.positions.profile[idx], return_inverse=True)
        strings = VOCAB.strings
        parts = [[strings[c] for c in codes.tolist()] for codes in profile_parts(profiles)]
        out["profiles"] = [parts, index.astype(index_dtype(len(profiles))).tobytes()]
        return _ENC.encode(out)

    def apply_delta(self, raw: bytes) -> None:
        d = _DEC.decode(raw)
        check_format(d, "carry delta", unversioned=2)
        keys = np.frombuffer(d["p"], "<u8").astype(_U64)
        found, cell, ts = _unpack_entries(d["trip"], len(keys))
        self.open_trip.upsert(keys[found], cell, ts)
        self.open_trip.remove(keys[~found])
        found, cell, ts = _unpack_entries(d["pos"], len(keys))
        (genders, ages, origins), index = d["profiles"]
        profiles = profile_codes(VOCAB.codes(genders), VOCAB.codes(ages), VOCAB.codes(origins))
        profile = profiles[np.frombuffer(index, index_dtype(len(profiles)))]
        self.positions.upsert(keys[found], CELL_IDS.codes(cell), ts, profile)
        self.positions.remove(keys[~found])
        for table in (self.positions, self.open_trip):
            table.oldest_ms = None


def _pack_entries(found: np.ndarray, cell: np.ndarray, ts: np.ndarray, packed: bool = False) -> list[Any]:
    """[presence bits, distinct cells, each entry's cell index, base time, times relative to it]: cells
    and times of the present entries only (`packed`) or of every key (then masked here)."""
    if not packed:
        cell, ts = cell[found], ts[found]
    cells, index = np.unique(cell, return_inverse=True)
    base = int(ts.min()) if len(ts) else 0
    return [np.packbits(found).tobytes(), cells.astype("<u8").tobytes(),
            index.astype(index_dtype(len(cells))).tobytes(), base,
            (ts - base).astype("<i4").tobytes()]  # fmt: skip


def _unpack_entries(packed: list[Any], n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(which of the n keys have an entry, their cells, their times)."""
    bits, cells, index, base, ts = packed
    found = np.unpackbits(np.frombuffer(bits, np.uint8), count=n).astype(np.bool_)
    uniq = np.frombuffer(cells, "<u8").astype(_U64)
    cell = uniq[np.frombuffer(index, index_dtype(len(uniq)))]
    return found, cell, np.frombuffer(ts, "<i4").astype(_I64) + base
