"""Per-person state as sorted numpy columns, and the worker-wide codes that keep it small.

A megacity's carry holds everyone seen within a TTL (millions of persons per worker), so an entry is a
few fixed-width columns, not a Python object: the person key, a time, and small codes. Cells and
demographic profiles are coded per process (`CELL_IDS`, `PROFILES`), like category strings (`VOCAB`):
codes never leave the process, persisted deltas carry the cells and strings (cityscreen/aggregate/carry.py).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Self

import numpy as np

_U64, _I64 = np.uint64, np.int64
_CODE_BITS = 21  # a profile packs three category codes of at most 21 bits into one 64-bit key


class Interner:
    """Dense codes of 64-bit values, in order of first sight (a city has thousands of cells)."""

    def __init__(self, dtype: type[np.unsignedinteger], what: str) -> None:
        self.dtype, self.what = dtype, what
        self.values = np.empty(0, _U64)
        self._codes: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self._codes)

    def codes(self, values: np.ndarray) -> np.ndarray:
        uniq, inverse = np.unique(values, return_inverse=True)
        out = np.empty(len(uniq), self.dtype)
        new: list[int] = []
        for i, v in enumerate(uniq.tolist()):
            c = self._codes.get(v)
            if c is None:
                if len(self._codes) > np.iinfo(self.dtype).max:
                    raise OverflowError(f"more than {np.iinfo(self.dtype).max + 1} distinct {self.what}")
                c = self._codes[v] = len(self._codes)
                new.append(v)
            out[i] = c
        if new:
            self.values = np.concatenate([self.values, np.array(new, _U64)])
        return out[inverse]


CELL_IDS = Interner(np.uint32, "base cells")
PROFILES = Interner(np.uint16, "(gender, age band, origin) profiles")


def profile_codes(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """The profile code of each row's three category codes (`VOCAB` codes)."""
    if len(a) and max(int(a.max()), int(b.max()), int(c.max())) >= 1 << _CODE_BITS:
        raise OverflowError(f"category codes past {1 << _CODE_BITS}: too many distinct categories")
    packed = (a.astype(_U64) << _U64(2 * _CODE_BITS)) | (b.astype(_U64) << _U64(_CODE_BITS)) | c.astype(_U64)
    return PROFILES.codes(packed)


def profile_parts(profiles: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The three category codes (int64) of each profile code."""
    packed = PROFILES.values[profiles]
    mask = _U64((1 << _CODE_BITS) - 1)
    a = packed >> _U64(2 * _CODE_BITS)
    b = (packed >> _U64(_CODE_BITS)) & mask
    return a.astype(_I64), b.astype(_I64), (packed & mask).astype(_I64)


@dataclass
class PersonTable:
    """Per-person (cell, time) entries, sorted by person key."""

    keys: np.ndarray = field(default_factory=lambda: np.empty(0, _U64))
    cell: np.ndarray = field(default_factory=lambda: np.empty(0, _U64))
    ts: np.ndarray = field(default_factory=lambda: np.empty(0, _I64))
    # a lower bound of every time in the table (None: unknown), so that pruning scans rarely
    oldest_ms: int | None = field(default=None, compare=False)

    def __len__(self) -> int:
        return len(self.keys)

    def _columns(self) -> tuple[str, ...]:
        return ("cell", "ts")

    def _find(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        idx = np.searchsorted(self.keys, keys)
        found = idx < len(self.keys)
        found[found] = self.keys[idx[found]] == keys[found]
        return idx, found

    def lookup(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(found, cell, ts) of each key (cell and ts are 0 where not found)."""
        idx, found = self._find(keys)
        at = idx[found]
        cell, ts = np.zeros(len(keys), self.cell.dtype), np.zeros(len(keys), _I64)
        cell[found], ts[found] = self.cell[at], self.ts[at]
        return found, cell, ts

    def upsert(self, keys: np.ndarray, *columns: np.ndarray) -> None:
        """Set the entries of distinct, sorted `keys`; `columns` in the order of `_columns`."""
        idx, found = self._find(keys)
        names = self._columns()
        for name, values in zip(names, columns, strict=True):
            getattr(self, name)[idx[found]] = values[found]
        new = ~found
        if new.any():
            at = idx[new]
            self.keys = np.insert(self.keys, at, keys[new])
            for name, values in zip(names, columns, strict=True):
                setattr(self, name, np.insert(getattr(self, name), at, values[new]))

    def copy(self) -> Self:
        """A table that `upsert` can change without changing this one (it writes columns in place)."""
        out = copy.copy(self)
        for name in ("keys", *self._columns()):
            setattr(out, name, getattr(self, name).copy())
        return out

    def remove(self, keys: np.ndarray) -> None:
        idx, found = self._find(keys)
        if found.any():
            gone = idx[found]
            for name in ("keys", *self._columns()):
                setattr(self, name, np.delete(getattr(self, name), gone))

    def keep(self, mask: np.ndarray) -> None:
        for name in ("keys", *self._columns()):
            setattr(self, name, getattr(self, name)[mask])

    def prune(self, keep_from_ms: int, slack_ms: int) -> None:
        """Forget entries older than `keep_from_ms`. Every use checks times itself, so a stale entry and
        a missing one count the same, and pruning only saves memory: a full scan runs once the oldest
        entry is `slack_ms` past the cut-off, not at every window."""
        if self.oldest_ms is not None and self.oldest_ms >= keep_from_ms - slack_ms:
            return
        self.keep(self.ts >= keep_from_ms)
        self.oldest_ms = int(self.ts.min()) if len(self) else keep_from_ms

    def as_dict(self) -> dict[int, tuple[int, ...]]:
        """key -> (column values), for tests and diagnostics."""
        cols = [getattr(self, n).tolist() for n in self._columns()]
        return dict(zip(self.keys.tolist(), zip(*cols, strict=True), strict=True))


@dataclass
class PositionTable(PersonTable):
    """Each person's last known position: the base cell (`CELL_IDS` code), time and demographic profile
    (`PROFILES` code) of their latest SIM event. 22 bytes a person: key 8, time 8, cell 4, profile 2."""

    cell: np.ndarray = field(default_factory=lambda: np.empty(0, np.uint32))
    profile: np.ndarray = field(default_factory=lambda: np.empty(0, np.uint16))
    newest_ms: int | None = field(default=None, compare=False)  # the latest time ever set

    def _columns(self) -> tuple[str, ...]:
        return ("cell", "ts", "profile")

    def upsert(self, keys: np.ndarray, *columns: np.ndarray) -> None:
        super().upsert(keys, *columns)
        if len(keys):
            newest = int(columns[1].max())
            self.newest_ms = newest if self.newest_ms is None else max(self.newest_ms, newest)
