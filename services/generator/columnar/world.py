"""Everything fixed for a run: the city's places, the population, the scenarios and the clock."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cityscreen.city import City, Venue
from services.generator.columnar.grid import F64, I64
from services.generator.columnar.places import HOME, Merchants, Spots, Stops
from services.generator.columnar.population import S_ATTEND, Population, build_population
from services.generator.columnar.rand import NO_DAY, Draws
from services.generator.scenarios import Scenarios, clock_ms

MIN_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
SIM_PERIOD_MS = 30 * MIN_MS  # periodic location update of an idle phone
_PHASE_STRIDE = 1_000_003  # a prime: slot -> person is a bijection unless it divides the population


@dataclass
class World:
    city: City
    seed: int
    scenarios: Scenarios
    stops: Stops
    merchants: Merchants
    spots: Spots
    pop: Population
    venue: Venue | None
    attends: np.ndarray  # bool per person: in the stadium crowd (the same persons every day)
    offset_ms: int  # local time = UTC + offset

    @property
    def n(self) -> int:
        return self.pop.n

    def base_ms(self, day: int) -> int:
        """Local midnight of a local day number, in UTC ms."""
        return day * DAY_MS - self.offset_ms

    def day_of(self, ts_ms: int) -> int:
        return (ts_ms + self.offset_ms) // DAY_MS

    def position(self, person: I64, place: I64) -> tuple[F64, F64]:
        """(lat, lng) of places: HOME, ANCHOR or a spot index."""
        spot = np.maximum(place, 0)
        lat = np.where(place == HOME, self.pop.home_lat[person], self.pop.anchor_lat[person])
        lng = np.where(place == HOME, self.pop.home_lng[person], self.pop.anchor_lng[person])
        return (
            np.where(place >= 0, self.spots.lat[spot], lat.astype(np.float64)),
            np.where(place >= 0, self.spots.lng[spot], lng.astype(np.float64)),
        )

    def stop_at(self, person: I64, place: I64, lat: F64, lng: F64, bus_only: np.ndarray) -> I64:
        """The stop a rider uses at a place: their own commute stops at home and work, the spot's stop
        elsewhere; the nearest bus stop when the other end has no metro."""
        spot = np.maximum(place, 0)
        own = np.where(place == HOME, self.pop.home_stop[person], self.pop.anchor_stop[person])
        stop = np.where(place >= 0, self.spots.stop[spot], own)
        bus = np.where(place >= 0, self.spots.bus_stop[spot], 0)
        mine = bus_only & (place < 0)
        if mine.any():
            bus[mine] = self.stops.stop_for(lat[mine], lng[mine], bus_only=True)
        return np.where(bus_only, bus, stop)

    def idle_persons(self, lo_ms: int, hi_ms: int) -> tuple[I64, I64]:
        """(person, ts_ms) of the periodic location updates due in [lo, hi).

        A person's phase is phase(slot) = slot * period // n with slot = person * stride mod n: a
        bijection, so the persons due in a span are a range of slots, found without a scan."""
        n = self.n
        stride = self.phase_stride()
        inverse = pow(stride, -1, n) if n > 1 else 0
        out_p, out_t = [], []
        for lo in range(lo_ms, hi_ms, SIM_PERIOD_MS):  # each person is due once per period
            for a, b in _residue_spans(lo, min(hi_ms, lo + SIM_PERIOD_MS)):
                s0, s1 = -(-a * n // SIM_PERIOD_MS), -(-b * n // SIM_PERIOD_MS)
                slots = np.arange(s0, s1, dtype=np.int64)
                phase = slots * SIM_PERIOD_MS // n
                out_p.append(slots * inverse % n if n > 1 else slots)
                out_t.append(lo + (phase - lo) % SIM_PERIOD_MS)
        if not out_p:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        return np.concatenate(out_p), np.concatenate(out_t)

    def phase_stride(self) -> int:
        stride = _PHASE_STRIDE
        while self.n > 1 and np.gcd(stride, self.n) != 1:
            stride += 2
        return stride


def _residue_spans(lo_ms: int, hi_ms: int) -> list[tuple[int, int]]:
    """[lo, hi) as spans of phase (time modulo the period), split where it wraps."""
    a = lo_ms % SIM_PERIOD_MS
    b = a + min(hi_ms - lo_ms, SIM_PERIOD_MS)
    return [(a, b)] if b <= SIM_PERIOD_MS else [(a, SIM_PERIOD_MS), (0, b - SIM_PERIOD_MS)]


def build_world(city: City, persons: int, seed: int, scenarios: Scenarios | None = None) -> World:
    scenarios = scenarios or Scenarios()
    venue = stadium_venue(city, scenarios)
    extra = round(persons * scenarios.tourists.share) if scenarios.tourists else 0
    stops = Stops(city)
    pop = build_population(city, persons, seed, stops, extra_tourists=extra)
    share = scenarios.stadium.share if scenarios.stadium and venue else 0.0
    attends = Draws(seed, NO_DAY).uniform(np.arange(pop.n), S_ATTEND) < share
    return World(
        city, seed, scenarios, stops, Merchants(city, seed, venue), Spots(city, seed, stops, venue),
        pop, venue, attends, round(city.utc_offset_h * HOUR_MS),
    )  # fmt: skip


def stadium_venue(city: City, scenarios: Scenarios) -> Venue | None:
    if not scenarios.stadium:
        return None
    wanted = scenarios.stadium.venue
    venues = [v for v in city.venues if (v.id == wanted if wanted else v.kind == "stadium")]
    return venues[0] if venues else None


def local_ms(world: World, ts_ms: I64) -> I64:
    """Milliseconds after local midnight."""
    return (ts_ms + world.offset_ms) % DAY_MS


def in_clock_window(world: World, ts_ms: I64, start: str, end: str) -> np.ndarray:
    local = local_ms(world, ts_ms)
    return (local >= clock_ms(start)) & (local < clock_ms(end))
