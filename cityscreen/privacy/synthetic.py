"""A seeded synthetic city, aggregated exactly: test and report input for the gate, with who is where.

Persons cluster around a few centres (dense core, sparse edge, like a real city), carry demographics,
and per window are seen in one base cell, may pay (at most the contribution bound) and ride transit.
Knowing every person's contributions lets the attack tests follow one person through the release.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from cityscreen.aggregates import FlowAggregate, Measure, WindowAggregate, stat_key
from cityscreen.demography import MERCHANT_CATEGORIES, ORIGIN_GROUPS
from cityscreen.events import AGE_BANDS, GENDERS
from cityscreen.geo import cell_for, parent_of

CENTRE = (22.54, 114.06)  # Shenzhen
LINES = {"metro": ("L1", "L2", "L3", "L4", "L5"), "bus": ("B1", "B2", "B3")}


@dataclass
class SyntheticWindow:
    aggregate: WindowAggregate
    # person -> every (res, cell, stat key) value that person contributes to
    touched: dict[int, set[tuple[int, str, str]]] = field(default_factory=dict)


class _Acc:
    """Exact per-(res, cell, key) value, distinct persons, and per-person contribution."""

    def __init__(self) -> None:
        self.per_person: dict[tuple[int, str, str], dict[int, float]] = defaultdict(
            lambda: defaultdict(float)
        )

    def add(self, res: int, cell: str, key: str, person: int, amount: float) -> None:
        self.per_person[(res, cell, key)][person] += amount

    def cells(self) -> dict[int, dict[str, dict[str, Measure]]]:
        out: dict[int, dict[str, dict[str, Measure]]] = defaultdict(lambda: defaultdict(dict))
        for (res, cell, key), contributions in self.per_person.items():
            values = contributions.values()
            out[res][cell][key] = Measure(float(sum(values)), len(contributions), float(max(values)))
        return {r: dict(c) for r, c in out.items()}


@dataclass(frozen=True)
class _Town:
    """The fixed part of a synthetic city: centres, who lives where and who they are."""

    centres: np.ndarray
    weights: np.ndarray
    spread: np.ndarray
    home: np.ndarray
    labels: list[dict[str, str]]  # per person: gender, age band, origin
    resolutions: tuple[int, ...]
    flow_res: int
    max_contributions: int

    @classmethod
    def draw(cls, rng: np.random.Generator, persons: int, resolutions: tuple[int, ...], flow_res: int,
             max_contributions: int) -> _Town:  # fmt: skip
        n_centres = 12
        centres = np.array(CENTRE) + rng.normal(0, 0.08, size=(n_centres, 2))
        weights = rng.dirichlet(np.full(n_centres, 0.7))
        home = rng.choice(n_centres, size=persons, p=weights)
        spread = rng.uniform(0.005, 0.03, size=n_centres)
        gender = rng.choice(len(GENDERS), size=persons)
        age = rng.choice(len(AGE_BANDS), size=persons, p=[0.12, 0.14, 0.24, 0.2, 0.14, 0.1, 0.06])
        origin = rng.choice(len(ORIGIN_GROUPS), size=persons, p=[0.35, 0.2, 0.15, 0.12, 0.1, 0.05, 0.03])
        labels = [
            {"gender": GENDERS[g], "age_band": AGE_BANDS[a], "origin": ORIGIN_GROUPS[o]}
            for g, a, o in zip(gender, age, origin, strict=True)
        ]
        return cls(centres, weights, spread, home, labels, resolutions, flow_res, max_contributions)

    def place(self, at: np.ndarray) -> str:
        return cell_for(float(at[0]), float(at[1]), self.resolutions[0])

    def add_everywhere(self, acc: _Acc, cell: str, amounts: list[tuple[str, float]], p: int) -> None:
        """Add each (key, amount) to `cell` and to each of its parents, in this order."""
        for res in self.resolutions:
            c = parent_of(cell, res)
            for key, amount in amounts:
                acc.add(res, c, key, p, amount)


def _pay(town: _Town, acc: _Acc, rng: np.random.Generator, cell: str, p: int) -> None:
    for _ in range(int(rng.integers(1, town.max_contributions + 1))):
        cat = MERCHANT_CATEGORIES[int(rng.integers(len(MERCHANT_CATEGORIES)))]
        amount = float(round(rng.lognormal(3.5, 1.0), 2))
        parts = ((None, None), ("category", cat), ("origin", town.labels[p]["origin"]))
        amounts = [(stat_key("payments", metric, d, v), x) for d, v in parts
                   for metric, x in (("count", 1.0), ("amount_cny", amount))]  # fmt: skip
        town.add_everywhere(acc, cell, amounts, p)


def _ride(town: _Town, acc: _Acc, rng: np.random.Generator, cell: str, p: int) -> str:
    """One trip from `cell`: taps in and out at every resolution; returns where it ended."""
    mode = "metro" if rng.random() < 0.7 else "bus"
    line = LINES[mode][int(rng.integers(len(LINES[mode])))]
    dest = int(rng.choice(len(town.centres), p=town.weights))
    out_cell = town.place(town.centres[dest] + rng.normal(0, 1, size=2) * town.spread[dest])
    for tap, at in (("tap_in", cell), ("tap_out", out_cell)):
        keys = [stat_key("transit", tap, d, v) for d, v in ((None, None), ("mode", mode), ("line", line))]
        town.add_everywhere(acc, at, [(key, 1.0) for key in keys], p)
    return out_cell


def _window(town: _Town, rng: np.random.Generator, previous: dict[int, str], start_ms: int,
            window_s: int) -> SyntheticWindow:  # fmt: skip
    acc = _Acc()
    flows: dict[tuple[str, str, str], set[int]] = defaultdict(set)
    present = rng.random(len(town.home)) < 0.85
    jitter = rng.normal(0, 1, size=(len(town.home), 2))
    where = town.centres[town.home] + jitter * town.spread[town.home][:, None]
    for p in (int(i) for i in np.flatnonzero(present)):
        cell = town.place(where[p])
        keys = ["population.persons"]
        keys += [stat_key("population", "persons", dim, cat) for dim, cat in town.labels[p].items()]
        town.add_everywhere(acc, cell, [(key, 1.0) for key in keys], p)
        here = parent_of(cell, town.flow_res)
        if p in previous and previous[p] != here:
            flows[(previous[p], here, "movement")].add(p)
        previous[p] = here
        if rng.random() < 0.15:
            _pay(town, acc, rng, cell, p)
        if rng.random() < 0.2:
            out_cell = _ride(town, acc, rng, cell, p)
            flows[(here, parent_of(out_cell, town.flow_res), "transit")].add(p)
    touched: dict[int, set[tuple[int, str, str]]] = defaultdict(set)
    for key, contributions in acc.per_person.items():
        for person in contributions:
            touched[person].add(key)
    aggregate = WindowAggregate(
        window_start_ms=start_ms,
        window_s=window_s,
        base_res=town.resolutions[0],
        flow_res=town.flow_res,
        cells=acc.cells(),
        flows=[FlowAggregate(o, d, kind, len(ps)) for (o, d, kind), ps in sorted(flows.items())],  # type: ignore[arg-type]
    )
    return SyntheticWindow(aggregate, dict(touched))


def synthetic_windows(
    *,
    persons: int = 20_000,
    windows: int = 2,
    seed: int = 0,
    window_s: int = 60,
    resolutions: tuple[int, ...] = (8, 7, 6),
    flow_res: int = 6,
    max_contributions: int = 4,
) -> list[SyntheticWindow]:
    rng = np.random.default_rng(seed)
    town = _Town.draw(rng, persons, resolutions, flow_res, max_contributions)
    previous: dict[int, str] = {}  # person -> flow cell of the last window they were seen in
    return [
        _window(town, rng, previous, 1_700_000_000_000 + w * window_s * 1000, window_s)
        for w in range(windows)
    ]
