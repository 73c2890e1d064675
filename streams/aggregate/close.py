"""Closing a window: one partition's rows of one window become a `Partial`.

Rules (docs/streams.md):
- population: each person is placed in the cell of their last SIM event of the window (by time, then
  event id), with the attributes of that event, so parent cells and totals are exact sums;
- payments and transit: every event counts in its own cell; persons are distinct payers / riders;
- flows at `flow_res`: transit pairs a tap-out with the same person's last tap-in (carried across
  windows, dropped after `trip_ttl_ms`); movement pairs a person's consecutive SIM cells. A flow counts
  in the window of its later event; a person counts once per (origin, dest) pair; same-cell pairs are
  not flows.
- with differential privacy on, each person contributes at most `max_contributions` events per metric
  (and flows) per window, the earliest ones, and amounts arrive already clipped (see rows.to_fen).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from operator import itemgetter
from typing import Any

import numpy as np

from cityscreen.aggregates import stat_key
from cityscreen.geo import parent_of
from cityscreen.settings import Settings
from streams.aggregate.flows import Carry, window_flows
from streams.aggregate.partial import Partial
from streams.aggregate.rows import Row

__all__ = ["AggConfig", "Carry", "close_columns", "close_window", "columns"]

_TS_EID = itemgetter(0, 1)
Columns = list[list[Any]]  # ts, event id, person, cell, and three category columns (see rows.py)
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


def _bounded(rows: list[Row], limit: int | None) -> list[Row]:
    """Rows in time order; with a limit, at most `limit` per person (the earliest)."""
    ordered = sorted(rows, key=_TS_EID)
    if limit is None:
        return ordered
    seen: dict[str, int] = defaultdict(int)
    kept = []
    for r in ordered:
        if seen[r[2]] < limit:
            seen[r[2]] += 1
            kept.append(r)
    return kept


# Memoised keys and parents: a window has millions of (event x resolution x key) additions but only a
# few thousand distinct cells and categories, so these turn string building and H3 calls into lookups.
@cache
def _places(cell: str, resolutions: tuple[int, ...]) -> tuple[tuple[int, str], ...]:
    return tuple((res, parent_of(cell, res)) for res in resolutions)


@cache
def _pop_keys(gender: str, age: str, origin: str) -> tuple[str, ...]:
    return (
        "population.persons",
        stat_key("population", "persons", "gender", gender),
        stat_key("population", "persons", "age_band", age),
        stat_key("population", "persons", "origin", origin),
    )


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


def close_window(
    window_start_ms: int,
    partition: int,
    sims: list[Row],
    payments: list[Row],
    transits: list[Row],
    carry: Carry,
    cfg: AggConfig,
    late_events: int = 0,
) -> Partial:
    """The partial of one window from its rows; updates `carry` (call windows of a partition in order)."""
    return close_columns(window_start_ms, partition, columns(sims), payments, transits, carry, cfg,
                         late_events)  # fmt: skip


def columns(rows: Sequence[Row]) -> Columns:
    """Rows as seven columns (see rows.py)."""
    return [list(c) for c in zip(*rows, strict=True)] if rows else [[] for _ in range(7)]


def close_columns(
    window_start_ms: int,
    partition: int,
    sims: Columns,
    payments: list[Row],
    transits: list[Row],
    carry: Carry,
    cfg: AggConfig,
    late_events: int = 0,
) -> Partial:
    """The partial of one window, SIM rows given as columns (they are nine in ten events).

    Statistics and their keys are inserted in the order in which the rows, in (time, event id) order,
    first reach them, so that a partial is the same bytes however it was computed."""
    res_all = tuple(cfg.resolutions)
    levels: _Levels = {res: {} for res in res_all}

    # SIM columns stay in arrival order: only the shared cell and category values are put in time
    # order, because only the order in which combinations first appear depends on it
    ts, eid, person, cell, gender, age, origin = sims
    n = len(ts)
    order = time_order(ts, eid) if n > 1 else list(range(n))
    multi, pos = _several(person, order)
    combo_cols: list[Sequence[str]]
    if n > 1:
        take = itemgetter(*order)
        combo_cols = [take(c) for c in (cell, gender, age, origin)]
    else:
        combo_cols = [cell, gender, age, origin]
    if multi:
        # a person with several events counts where first seen, with the values of their last row
        patched: list[list[str]] = [list(c) for c in combo_cols]
        drop = []
        for rows in multi.values():
            first, final = int(pos[rows[0]]), rows[-1]
            for c, col in zip(patched, (cell, gender, age, origin), strict=True):
                c[first] = col[final]
            drop += [int(pos[i]) for i in rows[1:]]
        for c in patched:
            for i in sorted(drop, reverse=True):
                del c[i]
        combo_cols = list(patched)
    combos = Counter(zip(*combo_cols, strict=True))
    _population(levels, combos, res_all)

    limit = cfg.max_contributions
    pay_groups: dict[tuple[str, str, str], dict[str, list[int]]] = {}
    for _, _, payer, pcell, category, fen, porigin in _bounded(payments, limit):
        _add(pay_groups, (pcell, category, porigin), payer, (1, fen))
    _into(levels, _tally(pay_groups, _pay_group_keys, res_all))

    ins = [r for r in transits if r[4] == "in"]
    outs = [r for r in transits if r[4] == "out"]
    for group, keys_of in ((ins, _tap_in_keys), (outs, _tap_out_keys)):
        tap_groups: dict[tuple[str, str, str], dict[str, list[int]]] = {}
        for _, _, rider, tcell, _, mode, line in _bounded(group, limit):
            _add(tap_groups, (tcell, mode, line), rider, (1,))
        _into(levels, _tally(tap_groups, keys_of, res_all))

    transits_sorted = sorted(transits, key=_TS_EID)
    first_ts = ts[order[0]] if n else None
    flows = window_flows(person, ts, cell, first_ts, multi, transits_sorted, carry, cfg.flow_res,
                         cfg.trip_ttl_ms, cfg.max_contributions)  # fmt: skip
    carry.prune(window_start_ms + cfg.window_ms, cfg.trip_ttl_ms)
    cells = {res: lv for res, lv in levels.items() if lv}
    return Partial(window_start_ms, partition, cells, flows, late_events)


def _several(person: Sequence[str], order: list[int]) -> tuple[dict[str, list[int]], np.ndarray]:
    """Persons with several rows -> their row indexes in time order (rare: one SIM event per person per
    window is the rule), and each row's position in `order` (empty when nobody has several rows)."""
    n = len(person)
    last = dict(zip(person, range(n), strict=True))
    if len(last) == n:
        return {}, np.empty(0, dtype=np.int64)
    not_last = set(range(n)).difference(last.values())
    multi: dict[str, list[int]] = {}
    for i in not_last:
        multi.setdefault(person[i], []).append(i)
    pos = np.empty(n, dtype=np.int64)
    pos[np.array(order, dtype=np.int64)] = np.arange(n)
    for p, rows in multi.items():
        rows.append(last[p])
        rows.sort(key=lambda i: int(pos[i]))
    return multi, pos


def time_order(ts: Sequence[int], eid: Sequence[str]) -> list[int]:
    """Row indexes in (time, event id, arrival) order. Sorting the times is done by numpy; only rows
    that share a time (a record often has many) are then ordered by event id."""
    arr = np.array(ts, dtype=np.int64)
    order_arr = np.argsort(arr, kind="stable")
    order: list[int] = order_arr.tolist()
    sts = arr[order_arr]
    same = sts[1:] == sts[:-1]
    if same.any():
        edges = np.diff(np.concatenate(([False], same, [False])).astype(np.int8))
        starts = np.flatnonzero(edges == 1).tolist()
        ends = (np.flatnonzero(edges == -1) + 1).tolist()
        by_eid = eid.__getitem__
        for a, b in zip(starts, ends, strict=True):
            order[a:b] = sorted(order[a:b], key=by_eid)  # stable: equal ids stay in arrival order
    return order


def _population(
    levels: _Levels, combos: Mapping[tuple[str, str, str, str], int], res_all: tuple[int, ...]
) -> None:
    """Each person counts once, in one cell per resolution, so a statistic's value and persons are the
    same count and its top contribution is 1. Persons are counted per (cell, categories) combination
    first: a window has about a hundred thousand persons but only a few thousand combinations."""
    counts: dict[int, dict[str, dict[str, int]]] = {res: {} for res in res_all}
    for (cell, gender, age, origin), n in combos.items():
        keys = _pop_keys(gender, age, origin)
        for res, c in _places(cell, res_all):
            lv = counts[res]
            d = lv.get(c)
            if d is None:
                d = lv[c] = {}
            for key in keys:
                d[key] = d.get(key, 0) + n
    for res, lv in counts.items():
        out = levels[res]
        for c, d in lv.items():
            out[c] = {key: (n, n, 1) for key, n in d.items()}


def _add(groups: dict[Any, dict[str, list[int]]], group: Any, person: str, values: tuple[int, ...]) -> None:
    g = groups.get(group)
    if g is None:
        groups[group] = {person: list(values)}
        return
    pv = g.get(person)
    if pv is None:
        g[person] = list(values)
    else:
        for i, v in enumerate(values):
            pv[i] += v


_NONE = float("-inf")  # "no top yet": every statistic ends up with at least one person


def _tally(
    groups: dict[Any, dict[str, list[int]]],
    keys_of: Callable[[Any], tuple[tuple[str, ...], ...]],
    res_all: tuple[int, ...],
) -> _Levels:
    """(value, persons, top person's value) per resolution, cell and key of rows grouped by (cell,
    categories) and person, one value per metric. A person in one group adds to the group's totals;
    a person in several groups (rare) is summed per statistic first."""
    acc: dict[int, dict[str, dict[str, list[Any]]]] = {res: {} for res in res_all}
    counts = Counter(p for g in groups.values() for p in g)
    multi = {p for p, n in counts.items() if n > 1}
    per_multi: dict[str, dict[tuple[int, str, str], int]] = {p: {} for p in multi}
    for group, per in groups.items():
        places = _places(group[0], res_all)
        singles = [pv for p, pv in per.items() if p not in multi] if multi else list(per.values())
        for m, keys in enumerate(keys_of(group)):
            vals = [pv[m] for pv in singles]
            v, n, top = (sum(vals), len(vals), max(vals)) if vals else (0, 0, _NONE)
            for res, c in places:
                lv = acc[res]
                d = lv.get(c)
                if d is None:
                    d = lv[c] = {}
                for key in keys:
                    x = d.get(key)
                    if x is None:
                        d[key] = [v, n, top]
                    else:
                        x[0] += v
                        x[1] += n
                        if top > x[2]:
                            x[2] = top
            for p in multi.intersection(per):
                mine = per_multi[p]
                for res, c in places:
                    for key in keys:
                        mine[(res, c, key)] = mine.get((res, c, key), 0) + per[p][m]
    for mine in per_multi.values():
        for (res, c, key), v in mine.items():
            x = acc[res][c][key]
            x[0] += v
            x[1] += 1
            if v > x[2]:
                x[2] = v
    return acc  # type: ignore[return-value]


def _into(levels: _Levels, acc: _Levels) -> None:
    for res, lv in acc.items():
        out = levels[res]
        for c, d in lv.items():
            target = out.get(c)
            if target is None:
                target = out[c] = {}
            for key, x in d.items():
                target[key] = (x[0], x[1], x[2])


def _pay_group_keys(group: tuple[str, str, str]) -> tuple[tuple[str, ...], ...]:
    return _pay_keys("count", group[1], group[2]), _pay_keys("amount_cny", group[1], group[2])


def _tap_in_keys(group: tuple[str, str, str]) -> tuple[tuple[str, ...], ...]:
    return (_tap_keys("tap_in", group[1], group[2]),)


def _tap_out_keys(group: tuple[str, str, str]) -> tuple[tuple[str, ...], ...]:
    return (_tap_keys("tap_out", group[1], group[2]),)
