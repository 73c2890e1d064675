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

from collections import defaultdict
from dataclasses import dataclass, field
from functools import cache

from cityscreen.aggregates import stat_key
from cityscreen.geo import parent_of
from cityscreen.settings import Settings
from streams.aggregate.partial import Partial
from streams.aggregate.rows import Row


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


@dataclass
class Carry:
    """Per-person state that spans windows: last SIM flow cell and open trip, each with its time."""

    last_cell: dict[str, tuple[str, int]] = field(default_factory=dict)
    open_trip: dict[str, tuple[str, int]] = field(default_factory=dict)

    def prune(self, now_ms: int, ttl_ms: int) -> None:
        for d in (self.last_cell, self.open_trip):
            stale = [p for p, (_, ts) in d.items() if now_ms - ts > ttl_ms]
            for p in stale:
                del d[p]


def _bounded(rows: list[Row], limit: int | None) -> list[Row]:
    """Rows in time order; with a limit, at most `limit` per person (the earliest)."""
    ordered = sorted(rows, key=lambda r: (r[0], r[1]))
    if limit is None:
        return ordered
    seen: dict[str, int] = defaultdict(int)
    kept = []
    for r in ordered:
        if seen[r[2]] < limit:
            seen[r[2]] += 1
            kept.append(r)
    return kept


class _Acc:
    """Per (res, cell, key): value and per-person contributions, reduced to (value, persons, top)."""

    def __init__(self) -> None:
        self.data: dict[tuple[int, str, str], dict[str, int]] = {}

    def add_all(
        self, places: tuple[tuple[int, str], ...], keys: tuple[str, ...], person: str, value: int
    ) -> None:
        data = self.data
        for res, c in places:
            for key in keys:
                per = data.get((res, c, key))
                if per is None:
                    data[(res, c, key)] = {person: value}
                else:
                    per[person] = per.get(person, 0) + value

    def into(self, cells: dict[int, dict[str, dict[str, tuple[int, int, int]]]]) -> None:
        for (res, cell, key), per in self.data.items():
            vals = per.values()
            cells.setdefault(res, {}).setdefault(cell, {})[key] = (sum(vals), len(per), max(vals))


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
    """The partial of one window; updates `carry` (call windows of a partition in order)."""
    cells: dict[int, dict[str, dict[str, tuple[int, int, int]]]] = {}
    res_all = tuple(cfg.resolutions)

    # population: last SIM event per person. Each person counts once, in one cell per resolution, so
    # a statistic's value and persons are the same count and its top contribution is 1.
    last: dict[str, Row] = {}
    for r in sorted(sims, key=lambda r: (r[0], r[1])):
        last[r[2]] = r
    pop: dict[tuple[int, str, str], int] = {}
    for _, _, _, cell, gender, age, origin in last.values():
        keys = _pop_keys(gender, age, origin)
        for res, c in _places(cell, res_all):
            for key in keys:
                k = (res, c, key)
                pop[k] = pop.get(k, 0) + 1
    for (res, c, key), n in pop.items():
        cells.setdefault(res, {}).setdefault(c, {})[key] = (n, n, 1)

    pay = _Acc()
    for _, _, person, cell, category, fen, origin in _bounded(payments, cfg.max_contributions):
        places = _places(cell, res_all)
        pay.add_all(places, _pay_keys("count", category, origin), person, 1)
        pay.add_all(places, _pay_keys("amount_cny", category, origin), person, fen)
    pay.into(cells)

    taps = _Acc()
    ins = [r for r in transits if r[4] == "in"]
    outs = [r for r in transits if r[4] == "out"]
    for group in (ins, outs):
        for _, _, person, cell, tap, mode, line in _bounded(group, cfg.max_contributions):
            metric = "tap_in" if tap == "in" else "tap_out"
            taps.add_all(_places(cell, res_all), _tap_keys(metric, mode, line), person, 1)
    taps.into(cells)

    flows = _flows(sims, transits, carry, cfg)
    carry.prune(window_start_ms + cfg.window_ms, cfg.trip_ttl_ms)
    return Partial(window_start_ms, partition, cells, flows, late_events)


def _flows(
    sims: list[Row], transits: list[Row], carry: Carry, cfg: AggConfig
) -> list[tuple[str, str, str, int]]:
    pairs: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    per_person: dict[tuple[str, str], int] = defaultdict(int)
    limit = cfg.max_contributions

    def add(origin: str, dest: str, kind: str, person: str) -> None:
        if origin == dest or person in pairs[(origin, dest, kind)]:
            return
        if limit is not None and per_person[(kind, person)] >= limit:
            return
        per_person[(kind, person)] += 1
        pairs[(origin, dest, kind)].add(person)

    for ts, _, person, cell, tap, _, _ in sorted(transits, key=lambda r: (r[0], r[1])):
        fcell = parent_of(cell, cfg.flow_res)
        if tap == "in":
            carry.open_trip[person] = (fcell, ts)
            continue
        trip = carry.open_trip.pop(person, None)
        if trip is not None and ts - trip[1] <= cfg.trip_ttl_ms:
            add(trip[0], fcell, "transit", person)
    for ts, _, person, cell, *_ in sorted(sims, key=lambda r: (r[0], r[1])):
        fcell = parent_of(cell, cfg.flow_res)
        prev = carry.last_cell.get(person)
        if prev is not None and ts - prev[1] <= cfg.trip_ttl_ms:
            add(prev[0], fcell, "movement", person)
        carry.last_cell[person] = (fcell, ts)
    return [(o, d, k, len(ps)) for (o, d, k), ps in sorted(pairs.items())]
