"""What the now layer would show of the default city at the default budget: `cityscreen privacy
now-report --persons N --hours 8,12,18,22 --out FILE`.

The `make run` city's people are simulated from the start of a pseudonym period (04:00 local) to the
last hour asked for. Their SIM events (straight from the generator, each at its tower's cell, as ingest
places it) give each person's presence track per tree resolution, exact and as the now layer keeps it
(settled, bounded: bounded_presence.py); the kept stock is released at the tick of each hour and at
the period's noisiest tick so far, with real keyed noise (now_layer.py). Measured per resolution, over
cells with at least MIN_EXACT persons present:
- relative error |released - exact| / exact: median and 90th percentile, and the target's ratio;
- the bias of the track rule and the bound (kept vs exact) and the noise alone (released vs kept);
- how often the exact value lies inside the 90% interval the tooltip would show (noise only);
- the share of persons present inside values shown (noisy value at least k).
Exact is people present as the final layer counts them at that moment (before its gate).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import h3
import numpy as np

from cityscreen.city import City, load_city
from cityscreen.errors import CityScreenError
from cityscreen.now_engine import check_now_settings, period_start
from cityscreen.privacy.bounded_presence import (
    Changes,
    bound_changes,
    changes_per_person,
    coarsened,
    presence_changes,
    stock_at,
)
from cityscreen.privacy.continual import dyadic_cover
from cityscreen.privacy.now_layer import NowRelease, anchored, city_cells, release_tick
from cityscreen.privacy.person_day import NowBudget, now_budget
from cityscreen.settings import Settings
from services.city_report import PEAK_DAY, local_ms

TARGET_RES = 7
TARGET_RELATIVE_ERROR = 0.05  # issue 15: median over cells with at least 100 persons present
MIN_EXACT = 100
FINAL_AFTER_GRACE_S = 5  # a final frame is out this long after its window's grace (issue 15's target)


class Tracks:
    """Every SIM position report of the simulated period: person, time, cell code per resolution."""

    def __init__(
        self, city: City, persons: int, seed: int, start_ms: int, until_ms: int, res: tuple[int, ...]
    ):
        from services.generator.columnar.engine import Engine

        who, when, where = [], [], []
        seen: dict[int, tuple[float, float]] = {}  # tower key -> its position
        for piece in Engine(city, persons, seed).slices(start_ms, (until_ms - start_ms) / 1000):
            cols = piece.cols.get("sim")
            if not cols:
                continue
            who.append(cols["person"].astype(np.int32))
            when.append(cols["ts_ms"])
            key = cols["iy"] * (1 << 32) + cols["ix"]  # the tower: one position per grid node
            where.append(key)
            towers, first = np.unique(key, return_index=True)
            for tower, i in zip(towers.tolist(), first.tolist(), strict=True):
                seen.setdefault(tower, (float(cols["lat"][i]), float(cols["lng"][i])))
        self.person = np.concatenate(who)
        self.ts_ms = np.concatenate(when)
        del who, when
        keys = np.array(sorted(seen), dtype=np.int64)
        place = np.searchsorted(keys, np.concatenate(where))
        places = [seen[k] for k in keys.tolist()]
        self.cells: dict[int, list[str]] = {}
        self.cell: dict[int, np.ndarray] = {}
        for r in res:
            # the coarser cells are parents of the finest, as the aggregator rolls them up
            names = [h3.cell_to_parent(h3.latlng_to_cell(lat, lng, max(res)), r) for lat, lng in places]
            self.cells[r] = sorted(set(names))
            code = {c: i for i, c in enumerate(self.cells[r])}
            self.cell[r] = np.array([code[c] for c in names], dtype=np.int32)[place]

    def parent_codes(self, fine: int, coarse: int) -> np.ndarray:
        """Each `fine` cell code's parent's code at `coarse` (itself when they are equal)."""
        code = {c: i for i, c in enumerate(self.cells[coarse])}
        return np.array([code[h3.cell_to_parent(c, coarse)] for c in self.cells[fine]], dtype=np.int32)


def _stock(changes: Changes, at_ms: int, names: list[str]) -> dict[str, int]:
    cells, persons = stock_at(changes, at_ms)
    return {names[c]: int(n) for c, n in zip(cells.tolist(), persons.tolist(), strict=True)}


def _errors(released: NowRelease, exact: dict[str, int], bounded: dict[str, int], k: int) -> dict[str, Any]:
    ex = np.array([exact.get(c, 0) for c in released.cells], dtype=np.float64)
    bo = np.array([bounded.get(c, 0) for c in released.cells], dtype=np.float64)
    big = ex >= MIN_EXACT
    shown = released.shown(k)
    rel = np.abs(released.noisy - ex)[big] / ex[big]
    inside = np.abs(released.noisy - ex) <= released.interval_90()
    return {
        "cells": len(released.cells),
        "cells_with_100": int(big.sum()),
        "median_exact_of_those": float(np.median(ex[big])) if big.any() else None,
        "relative_error_median": float(np.median(rel)) if big.any() else None,
        "relative_error_p90": float(np.quantile(rel, 0.9)) if big.any() else None,
        "bias_median": float(np.median(np.abs(bo - ex)[big] / ex[big])) if big.any() else None,
        "noise_median": float(np.median(np.abs(released.noisy - bo)[big] / ex[big])) if big.any() else None,
        "noise_sd": float(released.sd.mean()),
        "exact_inside_90_interval": float(inside[big].mean()) if big.any() else None,
        "shown_person_share": float(ex[shown].sum() / max(ex.sum(), 1)),
        "cells_shown": int(shown.sum()),
    }


def now_report(
    settings: Settings, *, persons: int, hours: list[int], say: Callable[[str], None] = print
) -> dict[str, Any]:
    city = load_city(settings.generator.city_file)
    stamps = [local_ms(city, PEAK_DAY, h) for h in sorted(hours)]
    start = period_start(settings, stamps[0])
    if period_start(settings, stamps[-1]) != start:
        raise CityScreenError(
            f"hours {sorted(hours)} fall in two pseudonym periods (each starts at 04:00 local): "
            "keep them in one"
        )
    check_now_settings(settings)
    budget = now_budget(settings.now, period_s=settings.pseudonym_rotation_s)
    began = time.perf_counter()
    say(f"[now] {persons:,} persons from {_clock(city, start)} to {_clock(city, stamps[-1])} local")
    tracks = Tracks(city, persons, settings.generator.seed, start, stamps[-1] + 1, budget.resolutions)
    say(f"[now] {len(tracks.person):,} position reports in {time.perf_counter() - began:.0f} s")
    day = _Day(settings, budget, city, tracks, start, stamps[-1])
    moments = [day.moment(t) for t in sorted({*stamps, noisiest_tick_ms(budget, start, stamps[-1])})]
    return _doc(settings, budget, persons, day.bound, moments, time.perf_counter() - began)


class _Day:
    """The simulated period's tracks per tree resolution: exact, and settled then bounded."""

    def __init__(
        self, settings: Settings, budget: NowBudget, city: City, tracks: Tracks, start: int, until: int
    ) -> None:
        self.settings, self.budget, self.tracks, self.start = settings, budget, tracks, start
        ttl_ms = settings.window.presence_ttl_s * 1000

        def track(res: int, settle_ms: int) -> Changes:
            return presence_changes(
                tracks.person,
                tracks.ts_ms,
                tracks.cell[res],
                ttl_ms=ttl_ms,
                until_ms=until,
                settle_ms=settle_ms,
            )

        self.exact = {r: track(r, 0) for r in budget.resolutions}
        finest = budget.resolutions[0]
        settled = track(finest, settings.now.settle_s * 1000)
        cut = bound_changes(settled, budget.max_changes)
        self.bounded = {r: coarsened(cut.changes, tracks.parent_codes(finest, r)) for r in budget.resolutions}
        made = changes_per_person(settled)
        quantiles = {q: float(np.quantile(made, p)) for q, p in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))}
        self.bound = {
            "changes_per_person": quantiles | {"max": int(made.max())},
            "persons_cut": cut.persons_cut,
            "persons_cut_share": cut.persons_cut / max(len(made), 1),
            "changes_dropped": cut.changes_dropped,
        }
        self.box_cells = {r: city_cells(city.bbox, r) for r in budget.resolutions}
        self.coarser = tuple(r for r in settings.window.resolutions if r < min(budget.resolutions))
        self.city = city

    def stocks(
        self, tick: int
    ) -> tuple[dict[int, dict[str, int]], dict[int, dict[str, int]], dict[int, NowRelease]]:
        """Exact and kept stocks at the end of `tick` (every resolution), and the tree's release."""
        budget, names = self.budget, self.tracks.cells
        end_ms = self.start + tick * budget.tick_s * 1000 - 1  # the last moment the tick covers
        exact = {r: _stock(self.exact[r], end_ms, names[r]) for r in budget.resolutions}
        kept = {r: _stock(self.bounded[r], end_ms, names[r]) for r in budget.resolutions}
        released = release_tick(
            kept,
            tick=tick,
            period_start_ms=self.start,
            budget=budget,
            secret=self.settings.privacy.dp_seed.encode(),
            cells=self.box_cells,
            coarser=self.coarser,
        )
        base = min(budget.resolutions)
        for r in self.coarser:  # exact and kept stocks at the summed resolutions
            exact[r] = _parents(exact[base], r)
            kept[r] = _parents(kept[base], r)
        return exact, kept, released

    def final_tick(self, at_ms: int) -> int:
        """The last tick of the freshest window whose final frame is out by `at_ms`: the window ends,
        then waits the grace and up to FINAL_AFTER_GRACE_S more (the issue's final_p99_s target)."""
        window_ms = self.settings.window.window_s * 1000
        out_ms = at_ms - (self.settings.window.grace_s + FINAL_AFTER_GRACE_S) * 1000
        window_end = (out_ms - self.start) // window_ms * window_ms
        return window_end // (self.budget.tick_s * 1000)

    def moment(self, at_ms: int) -> dict[str, Any]:
        k = self.settings.privacy.min_persons
        tick = self.budget.tick_of(at_ms - self.start)
        exact, kept, running = self.stocks(tick)
        final_tick = self.final_tick(at_ms)
        exact_final, _, at_final = self.stocks(final_tick)
        # the gate modelled as releasing every total of at least k (it releases nearly all of them)
        final = {r: {c: n for c, n in cells.items() if n >= k} for r, cells in exact_final.items()}
        shown = anchored(running, at_final, final, tick=tick, final_tick=final_tick)
        return {
            "local_time": _clock(self.city, at_ms),
            "tick": tick,
            "nodes_in_cover": len(dyadic_cover(tick)),
            "final_tick": final_tick,
            "persons_present": sum(exact[min(self.budget.resolutions)].values()),
            "by_res": {r: _errors(shown[r], exact[r], kept[r], k) for r in sorted(shown)},
            "running_by_res": {r: _errors(running[r], exact[r], kept[r], k) for r in sorted(running)},
        }


def noisiest_tick_ms(budget: NowBudget, start_ms: int, until_ms: int) -> int:
    """The end of the latest tick up to `until_ms` whose running value sums the most tree nodes."""
    last = budget.tick_of(until_ms - start_ms)
    tick = max(range(1, last + 1), key=lambda t: (t.bit_count(), t))
    return start_ms + tick * budget.tick_s * 1000


def _parents(stock: dict[str, int], res: int) -> dict[str, int]:
    out: dict[str, int] = {}
    for cell, n in stock.items():
        parent = h3.cell_to_parent(cell, res)
        out[parent] = out.get(parent, 0) + n
    return out


def _clock(city: City, ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000 + city.utc_offset_h * 3600, UTC).strftime("%H:%M")


def _doc(
    settings: Settings,
    budget: NowBudget,
    persons: int,
    bound: dict[str, Any],
    moments: list[dict[str, Any]],
    took_s: float,
) -> dict[str, Any]:
    worst = max(m["by_res"][TARGET_RES]["relative_error_median"] or 0.0 for m in moments)
    return {
        "persons": persons,
        "budget": {
            "epsilon_per_person_day": budget.epsilon,
            "delta": budget.delta,
            "rho_per_person_day": budget.rho,
            "tick_s": budget.tick_s,
            "tree_levels": budget.levels,
            "max_changes_per_day": budget.max_changes,
            "settle_s": settings.now.settle_s,
            "tree_resolutions": list(budget.resolutions),
            "node_sd": float(budget.sigma2) ** 0.5,
        },
        "bound_at_finest": bound,
        "moments": moments,
        "target": {
            "res": TARGET_RES,
            "relative_error_limit": TARGET_RELATIVE_ERROR,
            "worst_median": worst,
            "ratio_to_limit": worst / TARGET_RELATIVE_ERROR,
        },
        "settings": {
            "presence_ttl_s": settings.window.presence_ttl_s,
            "min_persons": settings.privacy.min_persons,
        },
        "took_s": took_s,
    }
