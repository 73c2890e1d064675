"""Counting persons at a window's close: people present (a stock) and active persons (a flow).

- `population.persons` (people present): every person whose last known position (their latest SIM
  event at or before the window's end, by time then arrival) is at most `presence_ttl_ms` old at the
  window's end, and of the window's pseudonym period, counts in that position's cell, with the gender,
  age band and origin of that event. An idle phone reports about every 30 minutes, so counting only
  the persons heard in the window would miss most of the people in a cell.
- `active.persons`: every person with a SIM event in the window, in the cell of the last one (the
  window-only count that `population.persons` was before it became a stock). Totals only.

Each person is in one cell for each statistic, so parents and breakdown totals are exact sums and the
value of a cell's statistic is its number of persons (top contribution 1).
"""

from __future__ import annotations

from functools import cache

import numpy as np

from cityscreen.aggregate.carry import Carry
from cityscreen.aggregate.rows import VOCAB, Chunk, Places, run_ends, run_starts
from cityscreen.aggregate.tables import CELL_IDS, PROFILES, profile_parts
from cityscreen.aggregates import stat_key

Levels = dict[int, dict[str, dict[str, tuple[int, int, int]]]]
_DIMENSIONS = ("gender", "age_band", "origin")
_BINCOUNT_BINS = 1 << 22  # (cells x profiles) up to this are grouped with a bincount, past it by a sort


def presence_since_ms(window_start_ms: int, window_ms: int, ttl_ms: int, period_start_ms: int) -> int:
    """The oldest position that still counts at the window's end: within the TTL, and not from before
    the window's pseudonym period began (that person now has another key, and would count twice)."""
    return max(window_start_ms + window_ms - ttl_ms, period_start_ms)


@cache
def _key(layer: str, dimension: str | None = None, category: str | None = None) -> str:
    return stat_key(layer, "persons", dimension, category)


def count_present(levels: Levels, carry: Carry, since_ms: int, res_all: tuple[int, ...]) -> None:
    """People present: the positions at or after `since_ms`, grouped by (cell, profile) first, so the
    per-resolution counts run over groups (thousands), not persons (millions)."""
    pos = carry.positions
    alive = np.flatnonzero(pos.ts >= since_ms)
    if not len(alive):
        return
    n_profiles = max(len(PROFILES), 1)
    group = pos.cell[alive].astype(np.int64) * n_profiles + pos.profile[alive]
    if len(CELL_IDS) * n_profiles <= _BINCOUNT_BINS:
        counts = np.bincount(group)
        groups = np.flatnonzero(counts)
        persons = counts[groups]
    else:
        groups, persons = np.unique(group, return_counts=True)
    cell_ids, profiles = np.divmod(groups, n_profiles)
    dims = dict(zip(_DIMENSIONS, profile_parts(profiles), strict=True))
    _count(levels, "population", CELL_IDS.values[cell_ids], persons, dims, res_all)


def count_active(levels: Levels, sims: Chunk, order: np.ndarray, res_all: tuple[int, ...]) -> None:
    """Active persons: each person once, in the cell of their last SIM row of the window. `order`: the
    rows by person, then time, then arrival."""
    last = order[run_ends(run_starts(sims.person[order]))]
    _count(levels, "active", sims.cell[last], np.ones(len(last), np.int64), {}, res_all)


def _count(
    levels: Levels,
    layer: str,
    cells: np.ndarray,
    persons: np.ndarray,
    dims: dict[str, np.ndarray],
    res_all: tuple[int, ...],
) -> None:
    """Add `persons` of each group (base cell, category codes per dimension) to every resolution: a
    weighted bincount per resolution and dimension."""
    places = Places(cells, res_all)
    strings = VOCAB.strings
    total = _key(layer)
    for res, names in places.names.items():
        cell = places.of_base[res][places.row_cell]
        lv = levels[res]
        sums = np.bincount(cell, weights=persons, minlength=len(names)).astype(np.int64)
        for c, n in zip(names, sums.tolist(), strict=True):
            lv.setdefault(c, {})[total] = (n, n, 1)
        for dimension, codes in dims.items():
            radix = int(codes.max()) + 1
            counts = np.bincount(cell * radix + codes, weights=persons).astype(np.int64)
            present = np.flatnonzero(counts)
            for k, n in zip(present.tolist(), counts[present].tolist(), strict=True):
                ci, code = divmod(k, radix)
                lv[names[ci]][_key(layer, dimension, strings[code])] = (n, n, 1)
