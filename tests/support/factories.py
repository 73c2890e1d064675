"""Factories for the records tests build by hand: one valid default per kind, any field overridden.

- `raw_fields(kind, **overrides)`: the JSON object of a raw (ingest) event, `kind` included; overrides may
  add unknown fields or give wrong types, for tests of what ingest rejects.
- `raw_event(kind, **overrides)`: the same as a typed `RawSim` / `RawPayment` / `RawTransit`.
- `clean_event(kind, **overrides)`: a clean (pseudonymized) `SimEvent` / `PaymentEvent` / `TransitEvent`.
- `make_aggregate(placements, payments=...)`: exact `WindowAggregate`s of persons placed in base cells
  (`crowd(n, ...)` makes n alike persons; `SIBLINGS` are seven res-8 cells under one res-7 cell).
- `make_frame(**overrides)`: a small valid released frame (the product's own, services.gateway.testing).

Every event gets a new `event_id` (and raw events new identifiers) unless one is given. Timestamps are
fixed (`START_MS`): a test about "now" passes `ts_ms` itself.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterable
from typing import Any, Literal, overload

import h3

from cityscreen.aggregates import Measure, WindowAggregate, stat_key
from cityscreen.events import (
    CleanEvent,
    Kind,
    PaymentEvent,
    RawEvent,
    RawPayment,
    RawSim,
    RawTransit,
    SimEvent,
    TransitEvent,
)
from services.gateway.testing import make_frame

__all__ = [
    "SIBLINGS",
    "START_MS",
    "clean_event",
    "crowd",
    "make_aggregate",
    "make_frame",
    "raw_event",
    "raw_fields",
]

START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
# Inside the bundled city's bounding box (Futian, Shenzhen).
LAT, LNG = 22.55, 114.05

_serial = itertools.count()


def raw_fields(kind: str = "sim", /, **overrides: Any) -> dict[str, Any]:
    """A valid raw event of `kind` as a JSON object, with `overrides` applied last."""
    n = next(_serial)
    fields: dict[str, Any] = {"kind": kind, "v": 1, "event_id": f"ev-{n}", "ts_ms": START_MS, "lat": LAT,
                              "lng": LNG}  # fmt: skip
    if kind == "sim":
        fields |= {"imsi": f"46000{n:010d}", "msisdn": f"86138{n:08d}", "tower_id": "T1", "gender": "M",
                   "birth_year": 1985, "origin": "HN"}  # fmt: skip
    elif kind == "payment":
        fields |= {"account": f"6217{n:012d}", "merchant_id": "futian-cbd-07", "category": "food",
                   "amount_cny": 25.5, "origin": "GD"}  # fmt: skip
    else:
        fields |= {"card": f"SZT{n:09d}", "tap": "in", "station_id": "L1-01", "line": "L1", "mode": "metro"}
    return fields | overrides


@overload
def raw_event(kind: Literal["sim"] = ..., /, **overrides: Any) -> RawSim: ...
@overload
def raw_event(kind: Literal["payment"], /, **overrides: Any) -> RawPayment: ...
@overload
def raw_event(kind: Literal["transit"], /, **overrides: Any) -> RawTransit: ...
@overload
def raw_event(kind: Kind, /, **overrides: Any) -> RawEvent: ...
def raw_event(kind: Kind = "sim", /, **overrides: Any) -> RawEvent:
    """A typed raw event, built without validation (as a test would): `overrides` may break the rules."""
    fields = raw_fields(kind, **overrides)
    del fields["kind"]  # the tag is the class
    return _RAW_TYPES[kind](**fields)


@overload
def clean_event(kind: Literal["sim"] = ..., /, **overrides: Any) -> SimEvent: ...
@overload
def clean_event(kind: Literal["payment"], /, **overrides: Any) -> PaymentEvent: ...
@overload
def clean_event(kind: Literal["transit"], /, **overrides: Any) -> TransitEvent: ...
@overload
def clean_event(kind: Kind, /, **overrides: Any) -> CleanEvent: ...
def clean_event(kind: Kind = "sim", /, **overrides: Any) -> CleanEvent:
    """A clean event as the ingest edge writes it (a 20-character pseudonym in `person`)."""
    common: dict[str, Any] = {"v": 1, "event_id": f"c{next(_serial)}", "ts_ms": START_MS,
                              "person": "ab" * 10, "lat": 22.54, "lng": LNG}  # fmt: skip
    return _CLEAN_TYPES[kind](**(common | _CLEAN_DEFAULTS[kind] | overrides))


_RAW_TYPES: dict[str, type[RawEvent]] = {"sim": RawSim, "payment": RawPayment, "transit": RawTransit}
_CLEAN_TYPES: dict[str, type[CleanEvent]] = {
    "sim": SimEvent,
    "payment": PaymentEvent,
    "transit": TransitEvent,
}
_CLEAN_DEFAULTS: dict[str, dict[str, Any]] = {
    "sim": {"tower_id": "T1-1", "gender": "F", "age_band": "25-34", "origin": "GD"},
    "payment": {"merchant_id": "M", "category": "food", "amount_cny": 1.0, "origin": "GD"},
    "transit": {"tap": "in", "station_id": "S", "line": "L1", "mode": "metro"},
}


# ------------------------------------------------------------------------------------ aggregates
BASE_RES, RESOLUTIONS = 8, (8, 7, 6)
PARENT7 = h3.latlng_to_cell(22.54, 114.06, 7)
SIBLINGS = sorted(h3.cell_to_children(PARENT7, 8))  # seven res-8 cells under one res-7 cell
Person = tuple[str, str, str]  # gender, age band, origin


def make_aggregate(
    placements: dict[str, list[Person]] | None = None,
    *,
    payments: Iterable[tuple[str, int, str, float]] = (),  # (base cell, payer, category, amount)
    window_start_ms: int = 1_700_000_000_000,
) -> WindowAggregate:
    """Exact aggregates of persons placed in base cells, rolled up to every resolution."""
    per: dict[tuple[int, str, str], dict[int, float]] = defaultdict(lambda: defaultdict(float))
    pid = 0
    for cell, persons in (placements or {}).items():
        for gender, age, origin in persons:
            pid += 1
            for res in RESOLUTIONS:
                c = h3.cell_to_parent(cell, res) if res < BASE_RES else cell
                per[(res, c, "population.persons")][pid] += 1
                for dim, cat in (("gender", gender), ("age_band", age), ("origin", origin)):
                    per[(res, c, stat_key("population", "persons", dim, cat))][pid] += 1
    for cell, payer, category, amount in payments:
        for res in RESOLUTIONS:
            c = h3.cell_to_parent(cell, res) if res < BASE_RES else cell
            splits: tuple[tuple[str | None, str | None], ...] = ((None, None), ("category", category))
            for by, part in splits:  # the total, then by category
                per[(res, c, stat_key("payments", "count", by, part))][10_000 + payer] += 1
                per[(res, c, stat_key("payments", "amount_cny", by, part))][10_000 + payer] += amount
    cells: dict[int, dict[str, dict[str, Measure]]] = defaultdict(lambda: defaultdict(dict))
    for (res, c, key), contributions in per.items():
        vals = contributions.values()
        cells[res][c][key] = Measure(float(sum(vals)), len(contributions), float(max(vals)))
    return WindowAggregate(
        window_start_ms=window_start_ms,
        window_s=60,
        base_res=BASE_RES,
        flow_res=6,
        cells={r: dict(c) for r, c in cells.items()},
    )


def crowd(n: int, gender: str = "F", age: str = "25-34", origin: str = "guangdong") -> list[Person]:
    return [(gender, age, origin)] * n


def bus_stops(taps: dict[str, list[int]], window_s: int = 900) -> WindowAggregate:
    """Bus-only stops in base cells, each with the taps in on its bus lines (`bus-1`, `bus-2`, ...),
    rolled up to every resolution: no metro line is present, so each cell's metro mode is a known zero."""
    cells: dict[int, dict[str, dict[str, Measure]]] = defaultdict(dict)
    for cell, lines in taps.items():
        per_key = {"transit.tap_in": sum(lines), "transit.tap_in|mode=bus": sum(lines)}
        per_key.update({f"transit.tap_in|line=bus-{i}": n for i, n in enumerate(lines, 1)})
        for res in RESOLUTIONS:
            c = h3.cell_to_parent(cell, res) if res < BASE_RES else cell
            stop = cells[res].setdefault(c, {"transit.tap_in|mode=metro": Measure(0.0, 0, 0.0)})
            for key, n in per_key.items():
                old = stop.get(key, Measure(0.0, 0, 0.0))
                stop[key] = Measure(old.value + n, old.persons + n, 1.0)
    return WindowAggregate(
        window_start_ms=0, window_s=window_s, base_res=BASE_RES, flow_res=6, cells=dict(cells)
    )
