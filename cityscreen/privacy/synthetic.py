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
    n_centres = 12
    centres = np.array(CENTRE) + rng.normal(0, 0.08, size=(n_centres, 2))
    weights = rng.dirichlet(np.full(n_centres, 0.7))
    home = rng.choice(n_centres, size=persons, p=weights)
    spread = rng.uniform(0.005, 0.03, size=n_centres)
    gender = rng.choice(len(GENDERS), size=persons)
    age = rng.choice(len(AGE_BANDS), size=persons, p=[0.12, 0.14, 0.24, 0.2, 0.14, 0.1, 0.06])
    origin = rng.choice(len(ORIGIN_GROUPS), size=persons, p=[0.35, 0.2, 0.15, 0.12, 0.1, 0.05, 0.03])
    base = resolutions[0]
    previous: dict[int, str] = {}
    out = []
    for w in range(windows):
        acc = _Acc()
        flows: dict[tuple[str, str, str], set[int]] = defaultdict(set)
        present = rng.random(persons) < 0.85
        where = centres[home] + rng.normal(0, 1, size=(persons, 2)) * spread[home][:, None]
        for p in (int(i) for i in np.flatnonzero(present)):
            cell = cell_for(float(where[p, 0]), float(where[p, 1]), base)
            labels = {
                "gender": GENDERS[gender[p]],
                "age_band": AGE_BANDS[age[p]],
                "origin": ORIGIN_GROUPS[origin[p]],
            }
            for res in resolutions:
                c = parent_of(cell, res)
                acc.add(res, c, "population.persons", p, 1.0)
                for dim, cat in labels.items():
                    acc.add(res, c, stat_key("population", "persons", dim, cat), p, 1.0)
            here = parent_of(cell, flow_res)
            if p in previous and previous[p] != here:
                flows[(previous[p], here, "movement")].add(p)
            previous[p] = here
            if rng.random() < 0.15:
                for _ in range(int(rng.integers(1, max_contributions + 1))):
                    cat = MERCHANT_CATEGORIES[int(rng.integers(len(MERCHANT_CATEGORIES)))]
                    amount = float(round(rng.lognormal(3.5, 1.0), 2))
                    for res in resolutions:
                        c = parent_of(cell, res)
                        parts: tuple[tuple[str | None, str | None], ...] = (
                            (None, None),
                            ("category", cat),
                            ("origin", labels["origin"]),
                        )
                        for d, v in parts:
                            acc.add(res, c, stat_key("payments", "count", d, v), p, 1.0)
                            acc.add(res, c, stat_key("payments", "amount_cny", d, v), p, amount)
            if rng.random() < 0.2:
                mode = "metro" if rng.random() < 0.7 else "bus"
                line = LINES[mode][int(rng.integers(len(LINES[mode])))]
                dest = int(rng.choice(n_centres, p=weights))
                out_at = centres[dest] + rng.normal(0, 1, size=2) * spread[dest]
                out_cell = cell_for(float(out_at[0]), float(out_at[1]), base)
                for tap, at in (("tap_in", cell), ("tap_out", out_cell)):
                    for res in resolutions:
                        c = parent_of(at, res)
                        taps: tuple[tuple[str | None, str | None], ...] = (
                            (None, None),
                            ("mode", mode),
                            ("line", line),
                        )
                        for d, v in taps:
                            acc.add(res, c, stat_key("transit", tap, d, v), p, 1.0)
                flows[(here, parent_of(out_cell, flow_res), "transit")].add(p)
        touched: dict[int, set[tuple[int, str, str]]] = defaultdict(set)
        for key, contributions in acc.per_person.items():
            for person in contributions:
                touched[person].add(key)
        aggregate = WindowAggregate(
            window_start_ms=1_700_000_000_000 + w * window_s * 1000,
            window_s=window_s,
            base_res=base,
            flow_res=flow_res,
            cells=acc.cells(),
            flows=[FlowAggregate(o, d, kind, len(ps)) for (o, d, kind), ps in sorted(flows.items())],  # type: ignore[arg-type]
        )
        out.append(SyntheticWindow(aggregate, dict(touched)))
    return out
