"""Closing a window: one partition's rows of one window become a `Partial`.

Rules (docs/streams.md):
- population: each person is placed in the cell of their last SIM event of the window (by time, then
  arrival), with the attributes of that event, so parent cells and totals are exact sums;
- payments and transit: every event counts in its own cell; persons are distinct payers / riders;
- flows at `flow_res`: transit pairs a tap-out with the same person's last tap-in (carried across
  windows, dropped after `trip_ttl_ms`); movement pairs a person's consecutive SIM cells. A flow counts
  in the window of its later event; a person counts once per (origin, dest) pair; same-cell pairs are
  not flows.
- with differential privacy on, each person contributes at most `max_contributions` events per metric
  (and flows) per window, the earliest ones, and amounts arrive already clipped (see rows.to_fen).

Every rule is a sort or a grouped sum over the window's columns (rows.Chunk); Python loops run only
over the results: cells, categories and statistics, never over events.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, partial

import numpy as np

from cityscreen.aggregates import stat_key
from cityscreen.geo import cell_name, parent_of
from cityscreen.settings import Settings
from streams.aggregate.flows import Carry, window_flows
from streams.aggregate.partial import Partial
from streams.aggregate.rows import VOCAB, Chunk, rank_in_run, run_ends, run_starts

__all__ = ["AggConfig", "Carry", "close_chunks"]

_Levels = dict[int, dict[str, dict[str, tuple[int, int, int]]]]


@dataclass(frozen=True)
class AggConfig:
    window_ms: int
    grace_ms: int
    base_res: int
    resolutions: tuple[int, ...]  # finest first, base included
    flow_res: int
    trip_ttl_ms: int
    max_contributions: int | None  # None: unbounded (differential privacy off)
    clip_cny: float | None

    @classmethod
    def from_settings(cls, settings: Settings) -> AggConfig:
        w, p = settings.window, settings.privacy
        return cls(
            window_ms=w.window_s * 1000,
            grace_ms=w.grace_s * 1000,
            base_res=w.h3_res,
            resolutions=tuple(w.resolutions),
            flow_res=w.flow_res,
            trip_ttl_ms=w.trip_ttl_s * 1000,
            max_contributions=p.max_contributions_per_window if p.dp_enabled else None,
            clip_cny=p.max_amount_cny if p.dp_enabled else None,
        )


# Memoised keys and parents: a window has millions of (event x resolution x key) additions but only a
# few thousand distinct cells and categories, so these turn string building and H3 calls into lookups.
@cache
def _places(cell: str, resolutions: tuple[int, ...]) -> tuple[tuple[int, str], ...]:
    return tuple((res, parent_of(cell, res)) for res in resolutions)


@cache
def _pop_key(dimension: str, category: str) -> str:
    return stat_key("population", "persons", dimension, category)


@cache
def _pay_keys(metric: str, category: str, origin: str) -> tuple[str, ...]:
    return (
        stat_key("payments", metric),
        stat_key("payments", metric, "category", category),
        stat_key("payments", metric, "origin", origin),
    )


@cache
def _tap_keys(metric: str, mode: str, line: str) -> tuple[str, ...]:
    return (
        stat_key("transit", metric),
        stat_key("transit", metric, "mode", mode),
        stat_key("transit", metric, "line", line),
    )


def close_chunks(
    window_start_ms: int,
    partition: int,
    sims: Chunk,
    payments: Chunk,
    transits: Chunk,
    carry: Carry,
    cfg: AggConfig,
    late_events: int = 0,
) -> Partial:
    """The partial of one window from its rows; updates `carry` (call windows of a partition in order)."""
    res_all = tuple(cfg.resolutions)
    levels: _Levels = {res: {} for res in res_all}
    sim_order = np.lexsort((sims.ts, sims.person))  # by person, then time, then arrival
    if len(sims):
        _population(levels, sims, sim_order, res_all)
    limit = cfg.max_contributions
    if len(payments):
        pay = payments.take(_bounded(payments, limit))
        places = _Places(pay.cell, res_all)
        ones = np.ones(len(pay), np.int64)
        for metric, values in (("count", ones), ("amount_cny", pay.b)):
            _tally(levels, places, pay, values, partial(_pay_keys, metric), (pay.a, pay.c))
    if len(transits):
        for tap, metric in (("in", "tap_in"), ("out", "tap_out")):
            rows = transits.take(np.flatnonzero(transits.a == VOCAB.code(tap)))
            if len(rows):
                rows = rows.take(_bounded(rows, limit))
                ones = np.ones(len(rows), np.int64)
                _tally(
                    levels,
                    _Places(rows.cell, res_all),
                    rows,
                    ones,
                    partial(_tap_keys, metric),
                    (rows.b, rows.c),
                )
    raw_flows = window_flows(sims, sim_order, transits, carry, cfg.flow_res, cfg.trip_ttl_ms, limit)
    flows = sorted((cell_name(o), cell_name(d), kind, n) for o, d, kind, n in raw_flows)
    carry.prune(window_start_ms + cfg.window_ms, cfg.trip_ttl_ms)
    cells = {res: lv for res, lv in levels.items() if lv}
    return Partial(window_start_ms, partition, cells, flows, late_events)


def _bounded(rows: Chunk, limit: int | None) -> np.ndarray:
    """Row indexes; with a limit, at most `limit` per person, the earliest by (time, arrival)."""
    if limit is None:
        return np.arange(len(rows))
    order = np.lexsort((rows.ts, rows.person))
    return np.sort(order[rank_in_run(run_starts(rows.person[order])) < limit])


class _Places:
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


def _population(levels: _Levels, sims: Chunk, order: np.ndarray, res_all: tuple[int, ...]) -> None:
    """Each person counts once, in the cell of their last SIM row in (time, arrival) order, so a
    statistic's value and persons are the same count and its top contribution is 1: a bincount per
    resolution and dimension. `order`: the rows by person, then time, then arrival."""
    rows = sims.take(order[run_ends(run_starts(sims.person[order]))])
    places = _Places(rows.cell, res_all)
    strings = VOCAB.strings
    for res, names in places.names.items():
        cell = places.of_base[res][places.row_cell]
        lv = levels[res]
        for c, n in zip(names, np.bincount(cell, minlength=len(names)).tolist(), strict=True):
            lv.setdefault(c, {})["population.persons"] = (n, n, 1)
        for dimension, codes in (("gender", rows.a), ("age_band", rows.b), ("origin", rows.c)):
            radix = int(codes.max()) + 1
            counts = np.bincount(cell * radix + codes)
            present = np.flatnonzero(counts)
            for k, n in zip(present.tolist(), counts[present].tolist(), strict=True):
                ci, code = divmod(k, radix)
                lv[names[ci]][_pop_key(dimension, strings[code])] = (n, n, 1)


def _tally(
    levels: _Levels,
    places: _Places,
    rows: Chunk,
    values: np.ndarray,
    keys_of: Callable[[str, str], tuple[str, ...]],
    dims: tuple[np.ndarray, np.ndarray],
) -> None:
    """(value, persons, top person's value) per resolution, cell and statistic. `keys_of(x, y)` names
    the statistics of a row with categories x and y of `dims`: the total, then the one of x, then the
    one of y. A person's rows are summed per statistic first, then the persons."""
    a, c = dims
    some_a, some_c = VOCAB.strings[int(a[0])], VOCAB.strings[int(c[0])]
    _, person = np.unique(rows.person, return_inverse=True)
    n_persons = int(person.max()) + 1
    strings = VOCAB.strings
    for res in places.names:
        cell = places.of_base[res][places.row_cell]
        names = places.names[res]
        for j, dim in enumerate((None, a, c)):
            group = cell if dim is None else cell * (int(dim.max()) + 1) + dim
            radix = 1 if dim is None else int(dim.max()) + 1
            gp, inverse = np.unique(group * n_persons + person, return_inverse=True)
            per_person = np.bincount(inverse, weights=values, minlength=len(gp)).astype(np.int64)
            groups = gp // n_persons
            starts = np.flatnonzero(run_starts(groups))
            sums = np.add.reduceat(per_person, starts)
            tops = np.maximum.reduceat(per_person, starts)
            persons = np.diff(np.append(starts, len(gp)))
            lv = levels[res]
            for g, v, n, top in zip(groups[starts].tolist(), sums.tolist(), persons.tolist(), tops.tolist(),
                                    strict=True):  # fmt: skip
                ci, code = divmod(g, radix)
                d = lv.get(names[ci])
                if d is None:
                    d = lv[names[ci]] = {}
                # a statistic's key depends only on its own dimension: any row's codes fill the other
                x = strings[code] if j == 1 else some_a
                y = strings[code] if j == 2 else some_c
                d[keys_of(x, y)[j]] = (v, n, top)
