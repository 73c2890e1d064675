"""The simulation: each person's day as stays and trips, turned into raw events in event-time order.

The per-person generator that preceded the columnar engine (services.generator.columnar), which
`generate`, `record`, `up` and the bench loads now use. Kept as the peer of `cityscreen bench
generator` (measured in the same run) and for its scalar grid_point, which the engine's vectorised
snap is tested against.

A person's day plan is drawn from a generator seeded by (seed, person, day), so any slice of time
is reproducible on its own. Events are emitted hour by hour (local time): every plan event in the
hour, plus the periodic location updates of phones at rest, sorted by event time.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import lru_cache

from cityscreen.city import City, MerchantCluster, Venue
from cityscreen.events import RawEvent
from services.generator.day_plan import Plan, Row, raw_event, weekday_of
from services.generator.population import (
    METRO_WALK_M,
    Person,
    Stop,
    StopIndex,
    build_population,
    clamp_into,
    distance_m,
    grid_bus_stop,
    grid_point,
)
from services.generator.scenarios import Scenarios, clock_ms

MIN_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
SIM_PERIOD_MS = 30 * MIN_MS  # periodic location update of an idle phone
HANDOVER_MS = 8 * MIN_MS  # a moving phone changes cell about this often
AMOUNT_MEDIAN_CNY = {
    "food": 32.0, "groceries": 58.0, "retail": 160.0, "transport": 14.0,
    "entertainment": 110.0, "services": 85.0, "travel": 380.0,
}  # fmt: skip
MERCHANTS_PER_CLUSTER = 60
SPILL_MS = 4 * HOUR_MS  # no trip lasts longer: yesterday's plans are consulted this far into a day


class Simulation:
    """A city, a seeded population and scenarios; `events(start_ms, duration_s)` yields raw events."""

    def __init__(self, city: City, persons: int, seed: int, scenarios: Scenarios | None = None) -> None:
        self.city, self.seed = city, seed
        self.scenarios = scenarios or Scenarios()
        extra = round(persons * self.scenarios.tourists.share) if self.scenarios.tourists else 0
        self.people = build_population(city, persons, seed, extra_tourists=extra)
        self.stops = StopIndex(city.metro_lines, city.bus_lines)
        self.offset_ms = round(city.utc_offset_h * HOUR_MS)
        rng = random.Random(f"{seed}:merchants")
        self.merchants = {m.id: self._cluster_merchants(m, rng) for m in city.merchant_clusters}
        self.cluster_weights = [m.weight for m in city.merchant_clusters]
        self.venue = self._stadium_venue()
        attend = self.scenarios.stadium.share if self.scenarios.stadium else 0.0
        pick = random.Random(f"{seed}:stadium")
        self.attendees = {p.idx for p in self.people if attend and pick.random() < attend}
        self._plans: dict[int, list[Plan]] = {}

    # ------------------------------------------------------------ emission
    def events(self, start_ms: int, duration_s: float) -> Iterator[RawEvent]:
        """Every event with start_ms <= ts_ms < start_ms + duration, in event-time order."""
        end_ms = start_ms + round(duration_s * 1000)
        year = datetime.fromtimestamp(start_ms / 1000, UTC).year
        lo = start_ms
        while lo < end_ms:
            local = lo + self.offset_ms
            hi = min(end_ms, local - local % HOUR_MS + HOUR_MS - self.offset_ms)
            yield from self._chunk(lo, hi, (local // DAY_MS), year)
            lo = hi

    def _chunk(self, lo: int, hi: int, day: int, year: int) -> Iterator[RawEvent]:
        plans = self._day_plans(day)
        rows: list[Row] = []
        if lo - (day * DAY_MS - self.offset_ms) < SPILL_MS:
            # trips begun late yesterday end today: their events live in yesterday's plans
            for person, plan in zip(self.people, self._day_plans(day - 1), strict=True):
                rows.extend(plan.rows(person.idx, lo, hi))
        for person, plan in zip(self.people, plans, strict=True):
            rows.extend(plan.rows(person.idx, lo, hi))
            for t0, t1, lat, lng in plan.stays:
                if t1 <= lo or t0 >= hi:
                    continue
                a, b = max(t0, lo), min(t1, hi)
                k = -(-(a - person.phase_ms) // SIM_PERIOD_MS)
                t = person.phase_ms + k * SIM_PERIOD_MS
                while t < b:
                    rows.append((t, person.idx, 1_000_000 + k % 1_000_000, (t, 0, "s", lat, lng)))
                    t += SIM_PERIOD_MS
        rows.sort(key=lambda r: (r[0], r[1], r[2]))
        for t, idx, seq, ev in rows:
            event_id = self._event_id(idx, (t + self.offset_ms) // DAY_MS, seq, t)
            yield raw_event(self.people[idx], ev, event_id, year, self.city.bbox)

    def _event_id(self, idx: int, day: int, seq: int, t: int) -> str:
        # opaque: an event id must not reveal the person, which would link pseudonyms across periods
        return hashlib.blake2b(f"{self.seed}|{idx}|{day}|{seq}|{t}".encode(), digest_size=12).hexdigest()

    def _day_plans(self, day: int) -> list[Plan]:
        plans = self._plans.get(day)
        if plans is None:
            for old in [d for d in self._plans if d < day - 1]:
                del self._plans[old]
            plans = self._plans[day] = [self.plan_day(p, day) for p in self.people]
        return plans

    # ------------------------------------------------------------ day plans
    def plan_day(self, p: Person, day: int) -> Plan:
        r = random.Random(f"{self.seed}:{p.idx}:{day}")
        base = day * DAY_MS - self.offset_ms  # local midnight in UTC ms
        weekend = weekday_of(day) >= 5
        plan = Plan(base, *p.home)
        stadium = self.scenarios.stadium
        attending = stadium is not None and self.venue is not None and p.idx in self.attendees
        if attending:
            assert stadium is not None
            kickoff = base + clock_ms(stadium.start)
            plan.cutoff = kickoff - r.randint(40, 150) * MIN_MS
        h = HOUR_MS
        if p.role in ("worker", "pupil", "student", "visitor") and p.anchor and not weekend:
            leave = {"pupil": (7.1, 0.3), "student": (8.6, 0.9)}.get(p.role, (8.0, 0.75))
            back = {"pupil": (16.6, 0.5), "student": (17.5, 1.5)}.get(p.role, (18.6, 1.0))
            if r.random() < 0.3 and p.role != "pupil":
                self._pay(plan, r, base + self._gauss(r, 7.6, 0.5) * h, p.home, "food", p)
            self._go(plan, r, p, self._gauss(r, *leave) * h + base, p.anchor, p.home_stop, p.anchor_stop)
            if r.random() < (0.45 if p.role == "pupil" else 0.8):
                self._pay(plan, r, base + self._gauss(r, 12.3, 0.35) * h, p.anchor, "food", p)
            if r.random() < 0.2:
                self._pay(plan, r, base + self._gauss(r, 15.5, 0.8) * h, p.anchor, "food", p)
            self._go(plan, r, p, self._gauss(r, *back) * h + base, p.home, p.anchor_stop, p.home_stop)
            if r.random() < 0.45 and p.role != "pupil":
                cat = "groceries" if r.random() < 0.6 else "food"
                self._pay(plan, r, plan.t + r.randint(10, 150) * MIN_MS, p.home, cat, p)
        elif p.role == "tourist":
            self._outing(plan, r, p, base + self._gauss(r, 9.5, 1.0) * h, spend=3, leisure=True)
            self._outing(plan, r, p, plan.t + r.randint(30, 120) * MIN_MS, spend=2, leisure=True)
            self._pay(plan, r, plan.t + r.randint(20, 90) * MIN_MS, p.home, "food", p)
        else:
            if r.random() < (0.7 if p.role == "retiree" else 0.35):
                self._pay(plan, r, base + self._gauss(r, 8.5, 1.0) * h, p.home, "groceries", p)
            if r.random() < (0.55 if weekend else 0.3):
                self._outing(plan, r, p, base + self._gauss(r, 12.5, 2.0) * h, spend=r.randint(1, 4))
            if r.random() < (0.5 if weekend else 0.35):
                self._pay(plan, r, max(plan.t, base + self._gauss(r, 19.0, 1.0) * h), p.home, "food", p)
        if attending:
            self._attend(plan, r, p, base)
        plan.cutoff = 1 << 62
        plan.stay_until(base + DAY_MS)
        plan.events.sort()
        return plan

    def _attend(self, plan: Plan, r: random.Random, p: Person, base: int) -> None:
        stadium, venue = self.scenarios.stadium, self.venue
        assert stadium is not None and venue is not None
        leave_at = plan.cutoff
        plan.cutoff = 1 << 62
        plan.events = [e for e in plan.events if e[0] < leave_at]
        spot = clamp_into(self.city.bbox, venue.lat + r.gauss(0, 0.0012), venue.lng + r.gauss(0, 0.0012))
        self._go(plan, r, p, leave_at, spot, None, None, transit_p=0.85)
        end = base + clock_ms(stadium.start) + round(stadium.hours * HOUR_MS)
        for _ in range(r.randint(1, 3)):
            t = r.randint(plan.t, max(plan.t + 1, end - 5 * MIN_MS))
            cat = r.choice(("food", "food", "entertainment", "retail"))
            amount = round(AMOUNT_MEDIAN_CNY[cat] * math.exp(r.gauss(0.2, 0.5)), 2)
            k = r.randrange(40)
            plan.add(t, "p", f"{venue.id}-{k:02d}", cat, amount, *self._offset(venue.lat, venue.lng, k, 250))
        self._go(plan, r, p, end + r.randint(0, 35) * MIN_MS, p.home, None, p.home_stop, transit_p=0.85)

    def _outing(
        self, plan: Plan, r: random.Random, p: Person, t: float, spend: int, leisure: bool = False
    ) -> None:
        if t > plan.base + 21 * HOUR_MS:
            return  # too late to go out: stay home
        clusters = self.city.merchant_clusters
        m = r.choices(clusters, weights=self.cluster_weights)[0]
        if leisure:
            m = max(r.sample(clusters, 3), key=lambda c: c.categories.get("entertainment", 0) + c.weight / 4)
        self._go(plan, r, p, t, self._offset(m.lat, m.lng, r.randrange(1000), m.radius_m), None, None)
        stay_ms = min(r.randint(60, 240) * MIN_MS, max(30 * MIN_MS, plan.base + 22 * HOUR_MS - plan.t))
        for _ in range(spend):
            merchant = r.choice(self.merchants[m.id])
            amount = AMOUNT_MEDIAN_CNY[merchant[1]] * math.exp(r.gauss(0, 0.6)) * (1.5 if leisure else 1.0)
            plan.add(
                plan.t + r.randint(5 * MIN_MS, stay_ms), "p", *merchant[:2], round(amount, 2), *merchant[2:]
            )
        self._go(plan, r, p, plan.t + stay_ms, p.home, None, p.home_stop)

    def _pay(
        self, plan: Plan, r: random.Random, t: float, at: tuple[float, float], cat: str, p: Person
    ) -> None:
        if p.age < 12:
            return
        cluster = self._cluster_near(*at)
        if cluster is not None and r.random() < 0.7:
            merchant = r.choice(self.merchants[cluster.id])
            cat, lat, lng, mid = merchant[1], merchant[2], merchant[3], merchant[0]
        else:
            iy, ix, lat, lng = grid_point(at[0], at[1], 0.003, 0.003, self.city.bbox)
            mid = f"LOC-{iy}-{ix}-{cat[:3]}"
        amount = round(AMOUNT_MEDIAN_CNY[cat] * math.exp(r.gauss(0, 0.55)), 2)
        plan.add(round(t), "p", mid, cat, amount, lat, lng)

    # ------------------------------------------------------------ movement
    def _go(
        self,
        plan: Plan,
        r: random.Random,
        p: Person,
        t_dep: float,
        dest: tuple[float, float],
        from_stop: Stop | None,
        to_stop: Stop | None,
        transit_p: float | None = None,
    ) -> None:
        """Stay until t_dep, then travel to `dest` by transit (tap-in / tap-out) or by road."""
        plan.stay_until(round(t_dep))
        if plan.t >= plan.cutoff:
            return
        t = plan.t
        origin = (plan.lat, plan.lng)
        dist = distance_m(*origin, *dest)
        use_transit = (r.random() < transit_p) if transit_p is not None else p.uses_transit
        plan.add(t + r.randint(0, 60_000), "s", *origin)
        if use_transit and dist > 1_500:
            a = from_stop or self._stop_for(*origin)
            b = to_stop or self._stop_for(*dest)
            if a.mode != b.mode:
                a, b = self._stop_for(*origin, "bus"), self._stop_for(*dest, "bus")
            t = self._ride(plan, r, t, origin, dest, a, b)
        else:
            speed_mps = 1.3 if dist < 1_500 else 7.0  # walk, or taxi/car in city traffic
            t = self._moving(plan, t, origin, dest, dist / speed_mps * 1000 + r.randint(2, 8) * MIN_MS)
        plan.lat, plan.lng = dest
        plan.t = t
        plan.add(t + r.randint(0, 60_000), "s", *dest)

    def _ride(
        self, plan: Plan, r: random.Random, t: int, origin: tuple[float, float], dest: tuple[float, float],
        a: Stop, b: Stop,
    ) -> int:  # fmt: skip
        t += round(distance_m(*origin, a.lat, a.lng) / 1.3 * 1000) + r.randint(60_000, 180_000)
        outage = self.scenarios.outage
        factor = 1.0
        if outage and a.mode == "metro" and outage.line in (a.line, b.line):
            local = (t + self.offset_ms) % DAY_MS
            if clock_ms(outage.start) <= local < clock_ms(outage.end):
                if r.random() < 0.3:  # gives up on transit and takes a taxi
                    return self._moving(plan, t, origin, dest, distance_m(*origin, *dest) / 7.0 * 1000)
                a, b, factor = _shuttle(a, outage.line), _shuttle(b, outage.line), 1.8
        ride_m = distance_m(a.lat, a.lng, b.lat, b.lng)
        if a.mode == "metro":
            ride_ms = (
                r.randint(1, 5) * MIN_MS
                + ride_m * 1.35 / 10.0 * 1000
                + (4 * MIN_MS if a.line != b.line else 0)
            )
        else:
            ride_ms = r.randint(2, 10) * MIN_MS + ride_m * 1.4 / 5.5 * 1000
        plan.add(t, "t", "in", a)
        t_out = self._moving(plan, t, (a.lat, a.lng), (b.lat, b.lng), ride_ms * factor)
        plan.add(t_out, "t", "out", b)
        return t_out + round(distance_m(b.lat, b.lng, *dest) / 1.3 * 1000)

    def _moving(
        self, plan: Plan, t: int, a: tuple[float, float], b: tuple[float, float], dur_ms: float
    ) -> int:
        """Handovers along the way: the phone attaches to new cells while its owner moves."""
        steps = int(dur_ms // HANDOVER_MS)
        for k in range(1, steps + 1):
            f = k * HANDOVER_MS / dur_ms
            plan.add(t + k * HANDOVER_MS, "s", a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f)
        return t + round(dur_ms)

    @lru_cache(maxsize=200_000)  # noqa: B019 - one Simulation per run; positions repeat (homes, clusters)
    def _stop_for(self, lat: float, lng: float, mode: str = "") -> Stop:
        if mode != "bus":
            stop, d = self.stops.nearest(lat, lng, "metro")
            if stop is not None and d <= METRO_WALK_M:
                return stop
        stop, d = self.stops.nearest(lat, lng, "bus")
        return stop if stop is not None and d <= 900 else grid_bus_stop(lat, lng, "local", self.city.bbox)

    @lru_cache(maxsize=200_000)  # noqa: B019
    def _cluster_near(self, lat: float, lng: float) -> MerchantCluster | None:
        best = min(self.city.merchant_clusters, key=lambda m: distance_m(lat, lng, m.lat, m.lng))
        return best if distance_m(lat, lng, best.lat, best.lng) <= max(best.radius_m, 800) else None

    # ------------------------------------------------------------ helpers
    @staticmethod
    def _gauss(r: random.Random, mean_h: float, sd_h: float) -> float:
        return min(23.5, max(5.0, r.gauss(mean_h, sd_h)))

    def _offset(self, lat: float, lng: float, k: int, radius_m: float) -> tuple[float, float]:
        """A fixed spot for merchant k of a place: merchants do not move between events."""
        angle, frac = k * 2.399963, math.sqrt(((k * 7919) % 1000) / 1000)
        d = radius_m * frac / 111_320.0
        return clamp_into(
            self.city.bbox,
            round(lat + d * math.sin(angle), 5),
            round(lng + d * math.cos(angle) / math.cos(math.radians(lat)), 5),
        )

    def _cluster_merchants(
        self, m: MerchantCluster, rng: random.Random
    ) -> list[tuple[str, str, float, float]]:
        cats = sorted(m.categories)
        out = []
        for k in range(MERCHANTS_PER_CLUSTER):
            cat = rng.choices(cats, weights=[m.categories[c] for c in cats])[0]
            out.append((f"{m.id}-{k:02d}", cat, *self._offset(m.lat, m.lng, k, m.radius_m)))
        return out

    def _stadium_venue(self) -> Venue | None:
        if not self.scenarios.stadium:
            return None
        wanted = self.scenarios.stadium.venue
        venues = [v for v in self.city.venues if (v.id == wanted if wanted else v.kind == "stadium")]
        return venues[0] if venues else None


def _shuttle(stop: Stop, line: str) -> Stop:
    return Stop(f"{stop.id}-shuttle", f"shuttle-{line}", "bus", stop.lat, stop.lng)


def generate_raw_events(
    city: City,
    persons: int,
    start_ms: int,
    duration_s: float,
    seed: int,
    scenarios: Scenarios | None = None,
) -> Iterator[RawEvent]:
    """The library entry point: a seeded population's raw events, in event-time order, as fast as possible."""
    return Simulation(city, persons, seed, scenarios).events(start_ms, duration_s)
