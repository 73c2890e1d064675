"""A person's day in the per-person generator (services.generator.simulate): stays and timed plan events,
and the raw event each plan event becomes."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from typing import Any

from cityscreen.city import BBox
from cityscreen.events import SCHEMA_VERSION, RawEvent, RawPayment, RawSim, RawTransit
from services.generator.population import Person, grid_point

TOWER_DEG = 0.006  # towers on a ~650 m grid

# plan event tuples: (ts_ms, seq, kind, *fields); kind "s" = sim, "p" = payment, "t" = transit tap
PlanEvent = tuple[Any, ...]
Row = tuple[int, int, int, PlanEvent]  # (ts_ms, person, seq, plan event): the order events are sent in


def tower_for(lat: float, lng: float, box: BBox) -> tuple[str, float, float]:
    """The tower a phone at (lat, lng) attaches to: the nearest grid node inside the city."""
    iy, ix, t_lat, t_lng = grid_point(lat, lng, TOWER_DEG, TOWER_DEG, box)
    return f"T{iy}-{ix}", t_lat, t_lng


def weekday_of(day: int) -> int:
    """0 = Monday for a local day number (days since 1970-01-01, a Thursday)."""
    return (day + 3) % 7


class Plan:
    """One person's day: stays (t0, t1, lat, lng) and timestamped events, built in time order."""

    __slots__ = ("base", "cutoff", "events", "lat", "lng", "seq", "stays", "t")

    def __init__(self, t0: int, lat: float, lng: float) -> None:
        self.base = t0  # local midnight
        self.t, self.lat, self.lng = t0, lat, lng
        self.stays: list[tuple[int, int, float, float]] = []
        self.events: list[PlanEvent] = []
        self.seq = 0
        self.cutoff = 1 << 62

    def add(self, t: int, kind: str, *fields: object) -> None:
        if t < self.cutoff:
            self.seq += 1
            self.events.append((t, self.seq, kind, *fields))

    def stay_until(self, t: int) -> None:
        t = min(t, self.cutoff)
        if t > self.t:
            self.stays.append((self.t, t, self.lat, self.lng))
            self.t = t

    def rows(self, person: int, lo: int, hi: int) -> Iterator[Row]:
        """The plan events with lo <= ts_ms < hi (the events are sorted once the plan is built)."""
        events = self.events
        i = bisect_left(events, (lo,))
        while i < len(events) and events[i][0] < hi:
            yield events[i][0], person, events[i][1], events[i]
            i += 1


def raw_event(p: Person, ev: PlanEvent, event_id: str, year: int, box: BBox) -> RawEvent:
    t, _, kind = ev[0], ev[1], ev[2]
    if kind == "s":
        tower, lat, lng = tower_for(ev[3], ev[4], box)
        return RawSim(
            v=SCHEMA_VERSION, event_id=event_id, ts_ms=t, imsi=p.imsi, msisdn=p.msisdn, tower_id=tower,
            lat=lat, lng=lng, gender=p.reg_gender, birth_year=year - p.reg_age, origin=p.origin,  # type: ignore[arg-type]
        )  # fmt: skip
    if kind == "p":
        merchant, category, amount, lat, lng = ev[3:]
        return RawPayment(
            v=SCHEMA_VERSION, event_id=event_id, ts_ms=t, account=p.account, merchant_id=merchant,
            category=category, amount_cny=amount, lat=lat, lng=lng, origin=p.origin,
        )  # fmt: skip
    tap, stop = ev[3], ev[4]
    return RawTransit(
        v=SCHEMA_VERSION, event_id=event_id, ts_ms=t, card=p.card, tap=tap, station_id=stop.id,
        line=stop.line, mode=stop.mode, lat=stop.lat, lng=stop.lng,
    )  # fmt: skip
