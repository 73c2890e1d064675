"""Binning: clean batches to compact numpy columns (time, person key, base cell, category codes).

A `Chunk` is one kind's rows, in arrival order, as six arrays: a window's rows are a few chunks, a close
concatenates them, and every count is then a sort or a bincount instead of a loop over events.
Categories are worker-wide integer codes (`VOCAB`); codes never leave the process: persisted deltas
carry the strings (cityscreen/aggregate/codec.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import h3
import numpy as np

from cityscreen.clean_batch import CleanBatch
from cityscreen.demography import ORIGIN_REGIONS
from cityscreen.geo import cell_name, parent_of

KIND_SIM, KIND_PAYMENT, KIND_TRANSIT = "sim", "payment", "transit"
KINDS: tuple[str, ...] = (KIND_SIM, KIND_PAYMENT, KIND_TRANSIT)
# the batch columns behind a chunk's a, b, c (payments' b is the amount, in fen)
COLUMNS = {
    KIND_SIM: ("gender", "age_band", "origin"),
    KIND_PAYMENT: ("category", "amount", "origin"),
    KIND_TRANSIT: ("tap", "mode", "line"),
}


class Vocab:
    """Worker-wide integer codes of category strings."""

    def __init__(self) -> None:
        self.strings: list[str] = []
        self._codes: dict[str, int] = {}

    def code(self, value: str) -> int:
        c = self._codes.get(value)
        if c is None:
            c = self._codes[value] = len(self.strings)
            self.strings.append(value)
        return c

    def codes(self, values: Sequence[str]) -> np.ndarray:
        return np.fromiter(map(self.code, values), np.int32, len(values))


VOCAB = Vocab()
_EMPTY_I64 = np.empty(0, np.int64)


@dataclass(frozen=True, eq=False)
class Chunk:
    """Rows of one kind in arrival order: `a`, `b`, `c` per `COLUMNS` (codes, or fen for amounts)."""

    ts: np.ndarray  # int64 ms
    person: np.ndarray  # uint64 person key (cityscreen.clean_batch.CleanBatch.person_keys)
    cell: np.ndarray  # uint64 H3 index at the base resolution
    a: np.ndarray
    b: np.ndarray
    c: np.ndarray

    def __len__(self) -> int:
        return len(self.ts)

    def take(self, index: np.ndarray) -> Chunk:
        return Chunk(*(col[index] for col in self.arrays()))

    def arrays(self) -> tuple[np.ndarray, ...]:
        return self.ts, self.person, self.cell, self.a, self.b, self.c

    @staticmethod
    def concat(chunks: Sequence[Chunk]) -> Chunk:
        if len(chunks) == 1:
            return chunks[0]
        if not chunks:
            return EMPTY
        return Chunk(*(np.concatenate(cols) for cols in zip(*(c.arrays() for c in chunks), strict=True)))


def run_starts(sorted_keys: np.ndarray) -> np.ndarray:
    """Whether each element of a sorted array starts a run of equal values (a person's first row)."""
    starts = np.ones(len(sorted_keys), np.bool_)
    starts[1:] = sorted_keys[1:] != sorted_keys[:-1]
    return starts


def run_ends(starts: np.ndarray) -> np.ndarray:
    """Whether each element ends its run (a person's last row), from `run_starts`."""
    ends = np.ones(len(starts), np.bool_)
    ends[:-1] = starts[1:]
    return ends


def rank_in_run(starts: np.ndarray) -> np.ndarray:
    """Each element's position within its run (0 for the first), from `run_starts`."""
    positions: np.ndarray = np.arange(len(starts)) - np.flatnonzero(starts)[np.cumsum(starts) - 1]
    return positions


EMPTY = Chunk(_EMPTY_I64, np.empty(0, np.uint64), np.empty(0, np.uint64), *(np.empty(0, np.int32),) * 3)


class CoarseCells(ValueError):
    """Clean batches whose cells are coarser than the aggregates' base resolution."""


_PARENT_IDS: dict[tuple[int, int], int] = {}


def parent_ids(cells: np.ndarray, res: int) -> np.ndarray:
    """Each 64-bit H3 index's ancestor at `res` (memoised per distinct cell: a city has thousands)."""
    uniq, inverse = np.unique(cells, return_inverse=True)
    out = np.empty(len(uniq), np.uint64)
    for i, cell in enumerate(uniq.tolist()):
        parent = _PARENT_IDS.get((cell, res))
        if parent is None:
            parent = _PARENT_IDS[(cell, res)] = int(h3.str_to_int(parent_of(cell_name(cell), res)))
        out[i] = parent
    return out[inverse]


# Memoised parents: a window has millions of (row x resolution) placements but a few thousand cells.
@cache
def _places(cell: str, resolutions: tuple[int, ...]) -> tuple[tuple[int, str], ...]:
    return tuple((res, parent_of(cell, res)) for res in resolutions)


class Places:
    """The distinct base cells of some rows, and each row's cell index at every resolution."""

    def __init__(self, cells: np.ndarray, res_all: tuple[int, ...]) -> None:
        uniq, self.row_cell = np.unique(cells, return_inverse=True)
        self.names: dict[int, list[str]] = {}
        self.of_base: dict[int, np.ndarray] = {}  # res -> parent index of each distinct base cell
        places = [_places(cell_name(c), res_all) for c in uniq.tolist()]
        for j, res in enumerate(res_all):
            parents = [p[j][1] for p in places]
            index = {name: i for i, name in enumerate(dict.fromkeys(parents))}
            self.names[res] = list(index)
            self.of_base[res] = np.array([index[p] for p in parents], np.int64)


def to_fen(amount_cny: np.ndarray, clip_cny: float | None) -> np.ndarray:
    """Amounts are summed as integer fen so that totals are exact whatever order partitions merge in
    (rounded half to even, as Python's round)."""
    if clip_cny is not None:
        amount_cny = np.minimum(amount_cny, clip_cny)
    cents: np.ndarray = np.rint(amount_cny * 100).astype(np.int64)
    return cents


def window_of(ts_ms: int, window_ms: int) -> int:
    return ts_ms - ts_ms % window_ms


def _coded(batch: CleanBatch, name: str, regions: bool = False) -> np.ndarray:
    values, codes = batch.cats[name]
    if regions:  # the clean topics carry the province code; the region is what is released
        values = [ORIGIN_REGIONS.get(v, v) for v in values]
    vocab_codes: np.ndarray = VOCAB.codes(values)[codes]
    return vocab_codes


def chunk_of(batch: CleanBatch, base_res: int, clip_cny: float | None) -> Chunk:
    """A clean batch's rows, cells at `base_res`."""
    cell = batch.cell
    if batch.res > base_res:
        cell = parent_ids(cell, base_res)
    elif batch.res < base_res:
        raise CoarseCells(
            f"clean {batch.kind} records carry H3 cells at resolution {batch.res}, coarser than the "
            f"aggregates' base resolution {base_res}: give the ingest edge and the aggregate workers the "
            f"same CITY_WINDOW__H3_RES, and replay the raw topics if it changed"
        )
    kind = batch.kind
    if kind == KIND_SIM:
        a, b, c = _coded(batch, "gender"), _coded(batch, "age_band"), _coded(batch, "origin", True)
    elif kind == KIND_PAYMENT:
        assert batch.amount_cny is not None
        a, b, c = _coded(batch, "category"), to_fen(batch.amount_cny, clip_cny), _coded(batch, "origin", True)
    else:
        a, b, c = _coded(batch, "tap"), _coded(batch, "mode"), _coded(batch, "line")
    return Chunk(batch.ts_ms.astype(np.int64), batch.person_keys, cell.astype(np.uint64), a, b, c)
