"""Test helpers shipped as API: frames and exact window aggregates for tests, the load test and demos.

Aggregates go to the release sink (`streams.release.ReleaseSink.publish`), which applies the gate: this
module never writes to Redis. Frames (`make_frame`, `synthetic_frame`, `make_now_frame`) are for pure
unit tests only.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import socket
import subprocess
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h3
import numpy as np

from cityscreen.aggregates import FlowAggregate, Measure, WindowAggregate, stat_key
from cityscreen.demography import MERCHANT_CATEGORIES, ORIGIN_GROUPS
from cityscreen.errors import CityScreenError
from cityscreen.frames import FRAME_VERSION, DayBudget, Frame, FramePrivacy, NowFrame, ReleasedFlow
from cityscreen.geo import cell_for, parent_of
from services.stack.ports import free_port
from services.stack.redis_server import redis_env

# Futian, Shenzhen: a point every test city and the bundled model cover.
DEMO_CENTER = (22.5431, 114.0579)


def demo_cells(res: int, rings: int = 3, center: tuple[float, float] = DEMO_CENTER) -> list[str]:
    """Cells in `rings` rings around `center`, sorted (deterministic)."""
    return sorted(h3.grid_disk(h3.latlng_to_cell(center[0], center[1], res), rings))


def make_frame(**overrides: Any) -> Frame:
    """A small valid frame: two cells at res 7, one with a suppressed breakdown part, one flow."""
    res = overrides.pop("res", 7)
    cells = demo_cells(res, rings=1)
    fields: dict[str, Any] = {
        "v": FRAME_VERSION,
        "window_start_ms": 1_700_000_040_000,
        "window_s": 60,
        "res": res,
        "published_ms": 1_700_000_130_000,
        "privacy": FramePrivacy(min_persons=10, dp_enabled=False, epsilon=0.0),
        "cells": {
            cells[0]: {
                "population.persons": 40.0,
                "population.persons|gender=F": 22.0,
                "population.persons|gender=M": 18.0,
                "payments.count": 12.0,
                "payments.amount_cny|category=food": 310.5,
            },
            cells[1]: {"population.persons": None, "transit.tap_in": 15.0, "transit.tap_in|mode=metro": 15.0},
        },
        "flows": [ReleasedFlow(cells[0], cells[1], "transit", 14.0)],
    }
    fields.update(overrides)
    return Frame(**fields)


def make_now_frame(**overrides: Any) -> NowFrame:
    """A small valid now-layer tick: the seven cells of one ring at res 7 (as `make_frame`'s cells), the
    second one under the threshold (null), each with its noise sd."""
    res = overrides.pop("res", 7)
    cells = demo_cells(res, rings=1)
    window_start_ms = overrides.pop("window_start_ms", 1_700_000_100_000)
    tick_ms = overrides.pop("tick_ms", window_start_ms + 24_000)
    fields: dict[str, Any] = {
        "v": FRAME_VERSION,
        "res": res,
        "window_start_ms": window_start_ms,
        "window_s": 60,
        "tick_ms": tick_ms,
        "published_ms": tick_ms + 800,
        "privacy": FramePrivacy(min_persons=10, dp_enabled=True, epsilon=0.0, mechanism="continual"),
        "cells": {cell: {"population.persons": None if i == 1 else 30.0 + i} for i, cell in enumerate(cells)},
        "noise_sd": {cell: 3.5 for cell in cells},
        "budget": DayBudget(
            period_start_ms=window_start_ms - window_start_ms % 86_400_000,
            epsilon_per_person_day=4.0,
            delta=1e-9,
            rho_per_person_day=0.05,
            rho_spent=0.01,
            epsilon_spent=1.2,
        ),
    }
    fields.update(overrides)
    return NowFrame(**fields)


def _released(n: float, min_persons: int = 10) -> float | None:
    return float(n) if n >= min_persons else None


def _split(rng: random.Random, total: int, shares: dict[str, float]) -> dict[str, int]:
    parts = {k: int(total * w * rng.uniform(0.6, 1.4)) for k, w in shares.items()}
    first = next(iter(parts))
    parts[first] = max(0, total - sum(v for k, v in parts.items() if k != first))
    return parts


ORIGIN_SHARES = {
    "guangdong": 0.45,
    "central": 0.2,
    "southwest": 0.12,
    "east": 0.1,
    "north": 0.07,
    "hk-mo-tw": 0.04,
    "international": 0.02,
}
CATEGORY_SHARES = {
    "food": 0.35,
    "groceries": 0.2,
    "retail": 0.15,
    "transport": 0.1,
    "entertainment": 0.1,
    "services": 0.06,
    "travel": 0.04,
}


def synthetic_frame(res: int, window_start_ms: int, *, rings: int = 6, seed: int = 0) -> Frame:
    """A plausible frame published now: population (gender, origin), payments (category), transit, flows.

    Counts follow a skewed distribution, so some totals and many small breakdown parts fall under the
    threshold and are released as null (suppressed), as the gate would.
    """
    rng = random.Random(seed * 1_000_003 + window_start_ms + res)
    cells: dict[str, dict[str, float | None]] = {}
    for cell in demo_cells(res, rings):
        persons = int(rng.expovariate(1 / 120))
        if persons == 0:
            continue
        stats: dict[str, float | None] = {"population.persons": _released(persons)}
        if persons >= 10:
            females = int(persons * rng.uniform(0.35, 0.65))
            stats["population.persons|gender=F"] = _released(females)
            stats["population.persons|gender=M"] = _released(persons - females)
            for origin, n in _split(rng, persons, ORIGIN_SHARES).items():
                stats[f"population.persons|origin={origin}"] = _released(n)
        payers = int(persons * rng.uniform(0.1, 0.5))
        if payers >= 10:
            spend = round(payers * rng.uniform(20, 90), 2)
            stats["payments.count"] = float(payers)
            stats["payments.amount_cny"] = spend
            for cat, share in CATEGORY_SHARES.items():
                part = payers * share * rng.uniform(0.5, 1.5)
                stats[f"payments.amount_cny|category={cat}"] = round(spend * share, 2) if part >= 10 else None
        taps = int(persons * rng.uniform(0.05, 0.4))
        if taps:
            stats["transit.tap_in"] = _released(taps)
        cells[cell] = stats
    ids = sorted(cells)
    flows = [
        ReleasedFlow(
            ids[rng.randrange(len(ids))],
            ids[rng.randrange(len(ids))],
            rng.choice(["transit", "movement"]),
            _released(rng.randint(5, 80)),
        )
        for _ in range(min(12, len(ids)))
    ]
    return Frame(
        v=FRAME_VERSION,
        window_start_ms=window_start_ms,
        window_s=60,
        res=res,
        published_ms=int(time.time() * 1000),
        privacy=FramePrivacy(min_persons=10, dp_enabled=False, epsilon=0.0),
        cells=cells,
        flows=[f for f in flows if f.origin != f.dest],
    )


@dataclass(frozen=True)
class Person:
    """One person's part of a window: where they were last seen (a base-resolution cell) and what they did."""

    cell: str
    gender: str = "F"
    origin: str = "guangdong"
    spend_cny: float = 0.0  # one payment of this amount (0: did not pay)
    category: str = "food"
    tap_in: bool = False


def make_aggregate(
    people: list[Person],
    *,
    window_start_ms: int = 1_700_000_040_000,
    window_s: int = 60,
    resolutions: tuple[int, ...] = (8, 7, 6),
    flow_res: int = 6,
    flows: tuple[FlowAggregate, ...] = (),
) -> WindowAggregate:
    """The exact aggregate of `people` at every resolution (parents sum their children, as in the workers)."""
    base = max(resolutions)
    per_person: dict[tuple[int, str, str], dict[int, float]] = defaultdict(lambda: defaultdict(float))
    for pid, p in enumerate(people):
        if h3.get_resolution(p.cell) != base:
            raise ValueError(f"person {pid} is in a res-{h3.get_resolution(p.cell)} cell, not res {base}")
        keys = [
            ("population.persons", 1.0),
            (stat_key("population", "persons", "gender", p.gender), 1.0),
            (stat_key("population", "persons", "origin", p.origin), 1.0),
        ]
        if p.spend_cny > 0:
            for dim, cat in ((None, None), ("category", p.category), ("origin", p.origin)):
                keys += [
                    (stat_key("payments", "count", dim, cat), 1.0),
                    (stat_key("payments", "amount_cny", dim, cat), p.spend_cny),
                ]
        if p.tap_in:
            keys += [("transit.tap_in", 1.0), (stat_key("transit", "tap_in", "mode", "metro"), 1.0)]
        for res in resolutions:
            cell = parent_of(p.cell, res)
            for key, amount in keys:
                per_person[(res, cell, key)][pid] += amount
    cells: dict[int, dict[str, dict[str, Measure]]] = {res: {} for res in resolutions}
    for (res, cell, key), contributions in per_person.items():
        values = contributions.values()
        cells[res].setdefault(cell, {})[key] = Measure(float(sum(values)), len(contributions), max(values))
    return WindowAggregate(
        window_start_ms=window_start_ms,
        window_s=window_s,
        base_res=base,
        flow_res=flow_res,
        cells=cells,
        flows=list(flows),
    )


def demo_aggregate(
    window_start_ms: int,
    *,
    persons: int = 3_000,
    seed: int = 0,
    spread_deg: float = 0.03,
    resolutions: tuple[int, ...] = (8, 7, 6),
    flow_res: int = 6,
) -> WindowAggregate:
    """A seeded crowd around `DEMO_CENTER` (dense core, sparse edge): some cells fall under the threshold.

    Modest by default (3,000 persons, a few hundred cells) so the gate keeps up with a 1 Hz publisher.
    """
    rng = np.random.default_rng([seed, window_start_ms // 1000])
    base = max(resolutions)
    where = np.asarray(DEMO_CENTER) + rng.normal(0, spread_deg, size=(persons, 2))
    genders, origins = rng.integers(0, 2, persons), rng.integers(0, len(ORIGIN_GROUPS), persons)
    pays, taps = rng.random(persons) < 0.3, rng.random(persons) < 0.25
    people = [
        Person(
            cell=cell_for(round(float(where[i, 0]), 4), round(float(where[i, 1]), 4), base),
            gender=("F", "M")[int(genders[i])],
            origin=ORIGIN_GROUPS[int(origins[i])],
            spend_cny=round(float(rng.lognormal(3.5, 0.6)), 2) if pays[i] else 0.0,
            category=MERCHANT_CATEGORIES[int(rng.integers(0, len(MERCHANT_CATEGORIES)))],
            tap_in=bool(taps[i]),
        )
        for i in range(persons)
    ]
    hubs = sorted({parent_of(p.cell, flow_res) for p in people})
    flows = tuple(
        FlowAggregate(o, d, "transit" if n % 2 else "movement", n)
        for o, d, n in (
            (hubs[int(rng.integers(len(hubs)))], hubs[int(rng.integers(len(hubs)))], int(rng.integers(3, 80)))
            for _ in range(12)
        )
        if o != d
    )
    return make_aggregate(
        people, window_start_ms=window_start_ms, resolutions=resolutions, flow_res=flow_res, flows=flows
    )


@contextlib.contextmanager
def redis_server(workdir: Path) -> Iterator[str]:
    """A throwaway redis-server on a free loopback port (no persistence); yields its URL."""
    exe = shutil.which("redis-server")
    if exe is None:
        raise CityScreenError("redis-server not found: install it (Debian: apt-get install redis-server)")
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [
            exe,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
            "--protected-mode",
            "yes",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=redis_env(),
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise CityScreenError(f"redis-server did not start on port {port}")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
