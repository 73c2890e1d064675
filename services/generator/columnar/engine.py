"""The columnar generator: a city's census population simulated as arrays, slice by slice.

    engine = Engine(city, persons, seed, scenarios)
    for piece in engine.slices(start_ms, duration_s):      # columns per kind, one slice at a time
        records = engine.encoder.arrays("sim", piece.cols["sim"], 500)

Deterministic: the same (city, persons, seed, scenarios) give the same events, and a slice of time
gives exactly the events of the same span of a longer run (every draw is keyed by person and day).
"""

from __future__ import annotations

from collections.abc import Iterator

import msgspec
import numpy as np

from cityscreen.city import City
from cityscreen.events import RawEvent
from services.generator.columnar.emission import KINDS, Emitter, Slice
from services.generator.columnar.encoding import Encoder
from services.generator.columnar.plans import DayPlan, plan_day, release_free_memory, spill_of
from services.generator.columnar.world import DAY_MS, HOUR_MS, MIN_MS, World, build_world
from services.generator.scenarios import Scenarios

SLICE_MINUTES = (1, 2, 5, 10, 15, 30, 60)  # divisors of an hour: slices stay aligned to the clock
SLICE_EVENTS = 1_000_000  # about this many events per slice at the busiest hours
SPILL_MS = 6 * HOUR_MS  # yesterday's late trips end before this hour; later events of them are dropped
_DECODE = msgspec.json.Decoder(list[RawEvent])


def census(city: City) -> int:
    """The persons a run simulates by default: the districts' residents times the operator's share."""
    return round(sum(d.population for d in city.districts) * city.operator_share)


class Engine:
    def __init__(self, city: City, persons: int, seed: int, scenarios: Scenarios | None = None) -> None:
        self.world: World = build_world(city, persons, seed, scenarios)
        self.emitter = Emitter(self.world)
        self.encoder = Encoder(self.world)
        self._plans: dict[int, DayPlan] = {}
        # a warm start: the first slice of a run also carries one location update of every person,
        # within this long of its start (0: none; `cityscreen generate --warm-s`)
        self.warm_ms = 0
        self._spills: dict[int, DayPlan | None] = {}

    def plan(self, day: int) -> DayPlan:
        if day not in self._plans:
            self._plans = {d: p for d, p in self._plans.items() if d == day - 1}
            self._plans[day] = plan_day(self.world, day)
            release_free_memory()
        return self._plans[day]

    def spill(self, day: int) -> DayPlan:
        """Yesterday's events after midnight (until SPILL_MS): late rides home, late payments."""
        if self._spills.get(day) is None:
            self._spills = {day: spill_of(self.world, self.plan(day - 1), SPILL_MS)}
            self._plans.pop(day - 1, None)
        spill = self._spills[day]
        assert spill is not None
        return spill

    def slice_ms(self) -> int:
        """Event time per slice: a minute for a megacity (~1 million events at the morning peak), up
        to an hour for small populations, where the cost per slice would dominate. The events do not
        depend on it."""
        want = SLICE_EVENTS / max(1, self.world.n / 20)  # ~1 event per 20 persons per minute at peaks
        return max([m for m in SLICE_MINUTES if m <= want], default=1) * MIN_MS

    def slices(self, start_ms: int, duration_s: float, slice_ms: int | None = None) -> Iterator[Slice]:
        """Slices of at most `slice_ms`, aligned to multiples of it and cut at local midnight."""
        slice_ms = slice_ms or self.slice_ms()
        end_ms = start_ms + round(duration_s * 1000)
        lo = start_ms
        while lo < end_ms:
            day = self.world.day_of(lo)
            midnight = self.world.base_ms(day + 1)
            hi = min(end_ms, lo - lo % slice_ms + slice_ms, midnight)
            early = lo < self.world.base_ms(day) + SPILL_MS
            spill = self.spill(day) if early else None
            warm = self.warm_ms if lo == start_ms else 0
            yield self.emitter.emit(lo, hi, self.plan(day), spill, warm_ms=warm)
            lo = hi

    def events(self, start_ms: int, duration_s: float) -> Iterator[RawEvent]:
        """Every event with start_ms <= ts_ms < start_ms + duration as RawEvent objects, in (ts_ms,
        person, seq) order: for tests, fixtures and small runs (the fast path stays in columns)."""
        for piece in self.slices(start_ms, duration_s):
            yield from self.raw_events(piece)

    def raw_events(self, piece: Slice) -> list[RawEvent]:
        events: list[RawEvent] = []
        keys = []
        for kind in KINDS:
            cols = piece.cols.get(kind)
            if not cols:
                continue
            events += _DECODE.decode(self.encoder.arrays(kind, cols, len(cols["ts_ms"]))[0])
            keys.append(((cols["ts_ms"] - piece.lo_ms) << 38) | (cols["person"] << 11) | cols["seq"])
        if not keys:
            return []
        return [events[i] for i in np.argsort(np.concatenate(keys), kind="stable")]


def generate_raw_events(
    city: City, persons: int, start_ms: int, duration_s: float, seed: int, scenarios: Scenarios | None = None
) -> Iterator[RawEvent]:
    """The library entry point: a seeded population's raw events, in event-time order."""
    return Engine(city, persons, seed, scenarios).events(start_ms, duration_s)


__all__ = ["DAY_MS", "Engine", "census", "generate_raw_events"]
