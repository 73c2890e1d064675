"""Day plans, vectorised: every person's trips and payments of one local day, drawn as arrays.

The plan follows the old per-person planner's day shapes: weekday commutes of workers, pupils, students
and visitors (breakfast, lunch and afternoon payments, the ride home, groceries in the evening);
tourists' two leisure outings; everyone else's errands and an outing (more at weekends); and the
stadium crowd, who cut their day short to go to the match. Each step is one array operation over a
group of persons, never a loop over persons.
"""

from __future__ import annotations

import contextlib
import ctypes
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from services.generator.columnar.grid import F64, I64
from services.generator.columnar.places import ANCHOR, CAT, HOME, SPOTS_PER_CLUSTER, VENUE_SPOTS
from services.generator.columnar.population import PUPIL, RETIREE, STUDENT, TOURIST, VISITOR, WORKER
from services.generator.columnar.rand import Draws
from services.generator.columnar.trips import TripCols, trip_details
from services.generator.columnar.world import HOUR_MS, MIN_MS, World
from services.generator.scenarios import clock_ms

AT, OUTING, LEISURE, VENUE = range(
    4
)  # payment styles: at a place / in a cluster / as a tourist / at the match
S_PLAN = 1_000  # draw streams of the plan: S_PLAN + k
BLOCK = 1 << 19  # persons planned at a time: their temporaries are some 200 MB
NEVER = 1 << 62  # the cutoff of persons who do not leave early
S_LEAVE = S_PLAN + 999


def weekday_of(day: int) -> int:
    """0 = Monday for a local day number (days since 1970-01-01, a Thursday)."""
    return (day + 3) % 7


@dataclass
class DayPlan:
    """Trips sorted by departure and payments sorted by time; times in ms after `base_ms`."""

    day: int
    base_ms: int
    t_person: npt.NDArray[np.int32]
    t_seq: npt.NDArray[np.uint8]
    t_dep: npt.NDArray[np.int32]
    t_arr: npt.NDArray[np.int32]
    t_origin: npt.NDArray[np.int32]
    t_dest: npt.NDArray[np.int32]
    t_crowd: npt.NDArray[np.bool_]
    p_ts: npt.NDArray[np.int32]
    p_person: npt.NDArray[np.int32]
    p_seq: npt.NDArray[np.uint8]
    p_where: npt.NDArray[np.int16]  # HOME / ANCHOR for AT, the cluster for OUTING and LEISURE
    p_cat: npt.NDArray[np.uint8]
    p_style: npt.NDArray[np.uint8]
    by_person: npt.NDArray[np.int32]  # trip indexes grouped by person (CSR with person_start)
    person_start: npt.NDArray[np.int64]

    def nbytes(self) -> int:
        return sum(v.nbytes for v in vars(self).values() if isinstance(v, np.ndarray))

    def trips(self, rows: I64) -> TripCols:
        return TripCols(
            self.t_person[rows].astype(np.int64), self.t_seq[rows].astype(np.int64),
            self.base_ms + self.t_dep[rows].astype(np.int64), self.t_origin[rows].astype(np.int64),
            self.t_dest[rows].astype(np.int64), self.t_crowd[rows],
        )  # fmt: skip


class _Day:
    """One group of persons planned step by step: `cur` and `place` are where each person is now."""

    def __init__(self, world: World, day: int, person: I64, cutoff_ms: I64) -> None:
        self.world, self.day, self.person = world, day, person
        self.base = world.base_ms(day)
        self.draws = Draws(world.seed, day)
        self.cur = np.full(len(person), self.base, dtype=np.int64)
        self.place = np.full(len(person), HOME, dtype=np.int64)
        self.cutoff = cutoff_ms  # the stadium crowd leaves then; a huge value for everyone else
        self.trips: list[tuple[I64, int, I64, I64, I64, I64, bool]] = []
        self.pays: list[tuple[I64, int, I64, I64, I64, int]] = []
        self.k = 0

    def u(self) -> F64:
        self.k += 1
        return self.draws.uniform(self.person, S_PLAN + self.k)

    def ints_ms(self, lo_min: int, hi_min: int) -> I64:
        return (lo_min + (self.u() * (hi_min - lo_min + 1)).astype(np.int64)) * MIN_MS

    def clock(self, mean_h: float, sd_h: float) -> I64:
        """A time of day, normal around mean_h, kept within 05:00-23:30."""
        self.k += 1
        hours = np.clip(mean_h + sd_h * self.draws.normal(self.person, S_PLAN + self.k), 5.0, 23.5)
        return self.base + np.rint(hours * HOUR_MS).astype(np.int64)

    def go(self, valid: npt.NDArray[np.bool_], dep_ms: I64, dest: I64, crowd: bool = False) -> None:
        """Stay until dep_ms (or later, if still travelling), then travel to `dest`."""
        dep = np.maximum(dep_ms, self.cur)
        rows = np.flatnonzero(valid & (dep < self.cutoff))
        seq = len(self.trips)
        cols = TripCols(self.person[rows], np.full(len(rows), seq), dep[rows], self.place[rows], dest[rows],
                        np.full(len(rows), crowd))  # fmt: skip
        arr = trip_details(self.world, cols, self.day).arr_ms
        self.trips.append((self.person[rows], seq, dep[rows], arr, cols.origin, cols.dest, crowd))
        self.cur[rows], self.place[rows] = arr, dest[rows]

    def pay(
        self, valid: npt.NDArray[np.bool_], ts_ms: I64, where: I64 | int, cat: I64 | int, style: int
    ) -> None:
        if style == AT:
            valid = valid & (self.world.pop.age[self.person] >= 12)  # no phone payments of young children
        rows = np.flatnonzero(valid & (ts_ms < self.cutoff))
        where_a = np.broadcast_to(where, self.person.shape)[rows]
        cat_a = np.broadcast_to(cat, self.person.shape)[rows]
        self.pays.append((self.person[rows], len(self.pays), ts_ms[rows], where_a, cat_a, style))

    def cluster(self, leisure: bool) -> I64:
        clusters = self.world.city.merchant_clusters
        if not leisure:
            self.k += 1
            return self.draws.choice(self.person, S_PLAN + self.k, [m.weight for m in clusters])
        score = np.array([m.categories.get("entertainment", 0.0) + m.weight / 4 for m in clusters])
        picks = np.stack([(self.u() * len(clusters)).astype(np.int64) for _ in range(3)])
        best: np.ndarray = picks[np.argmax(score[picks], axis=0), np.arange(len(self.person))]
        return best

    def outing(self, valid: npt.NDArray[np.bool_], t_ms: I64, spend: I64, leisure: bool = False) -> None:
        """To a cluster, a stay of 1-4 hours with up to 4 payments there, and home again."""
        valid = valid & (t_ms <= self.base + 21 * HOUR_MS)  # too late to go out: stay home
        cluster = self.cluster(leisure)
        spot = cluster * SPOTS_PER_CLUSTER + (self.u() * SPOTS_PER_CLUSTER).astype(np.int64)
        self.go(valid, t_ms, spot)
        arrived = valid & (self.place == spot)
        stay = np.minimum(self.ints_ms(60, 240), np.maximum(30 * MIN_MS, self.base + 22 * HOUR_MS - self.cur))
        for i in range(4):
            at = self.cur + 5 * MIN_MS + (self.u() * (stay - 5 * MIN_MS + 1)).astype(np.int64)
            self.pay(arrived & (i < spend), at, cluster, 0, LEISURE if leisure else OUTING)
        self.go(arrived, self.cur + stay, np.full(len(self.person), HOME))


def _commute(d: _Day, weekend: bool) -> None:
    role = d.world.pop.role[d.person]
    pupil, student = role == PUPIL, role == STUDENT
    every = np.ones(len(d.person), dtype=bool)
    leave = np.select([pupil, student], [d.clock(7.1, 0.3), d.clock(8.6, 0.9)], d.clock(8.0, 0.75))
    back = np.select([pupil, student], [d.clock(16.6, 0.5), d.clock(17.5, 1.5)], d.clock(18.6, 1.0))
    d.pay((d.u() < 0.3) & ~pupil, d.clock(7.6, 0.5), HOME, CAT["food"], AT)
    d.go(every, leave, np.full(len(d.person), ANCHOR))
    d.pay(d.u() < np.where(pupil, 0.45, 0.8), d.clock(12.3, 0.35), ANCHOR, CAT["food"], AT)
    d.pay(d.u() < 0.2, d.clock(15.5, 0.8), ANCHOR, CAT["food"], AT)
    d.go(every, back, np.full(len(d.person), HOME))
    cat = np.where(d.u() < 0.6, CAT["groceries"], CAT["food"])
    d.pay((d.u() < 0.45) & ~pupil, d.cur + d.ints_ms(10, 150), HOME, cat, AT)


def _tourist(d: _Day) -> None:
    every = np.ones(len(d.person), dtype=bool)
    d.outing(every, d.clock(9.5, 1.0), np.full(len(d.person), 3), leisure=True)
    d.outing(every, d.cur + d.ints_ms(30, 120), np.full(len(d.person), 2), leisure=True)
    d.pay(every, d.cur + d.ints_ms(20, 90), HOME, CAT["food"], AT)


def _errands(d: _Day, weekend: bool) -> None:
    retiree = d.world.pop.role[d.person] == RETIREE
    d.pay(d.u() < np.where(retiree, 0.7, 0.35), d.clock(8.5, 1.0), HOME, CAT["groceries"], AT)
    spend = 1 + (d.u() * 4).astype(np.int64)
    d.outing(d.u() < (0.55 if weekend else 0.3), d.clock(12.5, 2.0), spend)
    dinner = np.maximum(d.cur, d.clock(19.0, 1.0))
    d.pay(d.u() < (0.5 if weekend else 0.35), dinner, HOME, CAT["food"], AT)


def _attend(d: _Day, every: npt.NDArray[np.bool_]) -> None:
    """The stadium crowd (`every`): from wherever they are at their leaving time, to the match and home."""
    world = d.world
    stadium = world.scenarios.stadium
    assert stadium is not None and world.venue is not None
    leave, d.cutoff = d.cutoff, np.full(len(d.person), NEVER)
    spot = world.spots.venue_base + (d.u() * VENUE_SPOTS).astype(np.int64)
    d.go(every, leave, spot, crowd=True)
    end = d.base + clock_ms(stadium.start) + round(stadium.hours * HOUR_MS)
    spend = 1 + (d.u() * 3).astype(np.int64)
    for i in range(3):
        span = np.maximum(d.cur + 1, end - 5 * MIN_MS) - d.cur + 1
        d.pay(every & (i < spend), d.cur + (d.u() * span).astype(np.int64), 0, 0, VENUE)
    d.go(every, end + d.ints_ms(0, 35), np.full(len(d.person), HOME), crowd=True)


TRIP_COLUMNS = {"person": np.int32, "seq": np.uint8, "dep": np.int32, "arr": np.int32, "origin": np.int32,
                "dest": np.int32, "crowd": np.bool_}  # fmt: skip
PAY_COLUMNS = {"ts": np.int32, "person": np.int32, "seq": np.uint8, "where": np.int16, "cat": np.uint8,
               "style": np.uint8}  # fmt: skip
Parts = dict[str, list[np.ndarray]]


def plan_day(world: World, day: int) -> DayPlan:
    """Every person's plan for a local day, built in blocks of persons."""
    trips: Parts = {k: [] for k in TRIP_COLUMNS}
    pays: Parts = {k: [] for k in PAY_COLUMNS}
    for lo in range(0, world.n, BLOCK):
        _plan_block(world, day, np.arange(lo, min(world.n, lo + BLOCK), dtype=np.int64), trips, pays)
    release_free_memory()  # the blocks' temporaries, before the columns are joined
    return assemble(world, day, trips, pays)


def release_free_memory() -> None:
    """Give freed memory back to the system: glibc keeps freed blocks below its mmap threshold in the
    heap (a few GB while a megacity's plan is built); elsewhere a no-op."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _plan_block(world: World, day: int, person: I64, trips: Parts, pays: Parts) -> None:
    pop, weekend = world.pop, weekday_of(day) >= 5
    role = pop.role[person]
    commuter = np.isin(role, (WORKER, PUPIL, STUDENT, VISITOR)) & ~np.isnan(pop.anchor_lat[person])
    commuter &= not weekend
    tourist = (role == TOURIST) & ~commuter
    stadium = world.scenarios.stadium
    groups: list[tuple[np.ndarray, Callable[[_Day], None]]] = [
        (commuter, lambda d: _commute(d, weekend)),
        (tourist, _tourist),
        (~commuter & ~tourist, lambda d: _errands(d, weekend)),
    ]
    base = world.base_ms(day)
    for mask, template in groups:
        sub = person[mask]
        if not len(sub):
            continue
        crowd = world.attends[sub]
        cutoff = np.full(len(sub), NEVER, dtype=np.int64)
        if stadium is not None and world.venue is not None and crowd.any():
            kickoff = base + clock_ms(stadium.start)
            early = Draws(world.seed, day).integers(sub, S_LEAVE, 40, 150) * MIN_MS
            cutoff = np.where(crowd, kickoff - early, NEVER)
        d = _Day(world, day, sub, cutoff)
        template(d)
        if crowd.any():
            _attend(d, crowd)
        # stored at once in the plan's dtypes (times relative to midnight): a day's parts are most of
        # the memory a megacity's plan needs while it is built
        for person_, seq, dep, arr, origin, dest, crowd_ in d.trips:
            values = (person_, seq, dep - base, arr - base, origin, dest, crowd_)
            for (name, dtype), v in zip(TRIP_COLUMNS.items(), values, strict=True):
                trips[name].append(np.broadcast_to(np.asarray(v, dtype=dtype), person_.shape))
        for payer, slot, ts, where, cat, style in d.pays:
            for (name, dtype), v in zip(
                PAY_COLUMNS.items(), (ts - base, payer, slot, where, cat, style), strict=True
            ):
                pays[name].append(np.broadcast_to(np.asarray(v, dtype=dtype), payer.shape))


def assemble(world: World, day: int, trips: Parts, pays: Parts) -> DayPlan:
    """Flat columns: trips ordered by departure, payments by time, and trips grouped by person. One
    column at a time, its parts dropped as soon as it is joined, to keep the peak memory low."""

    def column(parts: Parts, name: str, dtype: type, order: np.ndarray | None) -> np.ndarray:
        joined = np.concatenate(parts.pop(name)) if parts[name] else np.zeros(0, dtype=dtype)
        return joined if order is None else joined[order]

    dep = column(trips, "dep", np.int32, None)
    order = np.argsort(dep, kind="stable")
    t = [
        dep[order] if name == "dep" else column(trips, name, dtype, order)
        for name, dtype in TRIP_COLUMNS.items()
    ]
    ts = column(pays, "ts", np.int32, None)
    order = np.argsort(ts, kind="stable")
    p = [
        ts[order] if name == "ts" else column(pays, name, dtype, order) for name, dtype in PAY_COLUMNS.items()
    ]
    return _plan_of(world, day, world.base_ms(day), t, p)


def _plan_of(world: World, day: int, base_ms: int, t: list[np.ndarray], p: list[np.ndarray]) -> DayPlan:
    """The plan of trip and payment columns, with its trips grouped by person (CSR)."""
    by_person = np.argsort(t[0], kind="stable").astype(np.int32)
    start = np.zeros(world.n + 1, dtype=np.int64)
    np.cumsum(np.bincount(t[0], minlength=world.n), out=start[1:])
    args: list[Any] = [day, base_ms, *t, *p, by_person, start]
    return DayPlan(*args)


def spill_of(world: World, plan: DayPlan, until_ms: int) -> DayPlan:
    """What of a day's plan happens after its midnight: trips begun late, and their payments. Trips
    still going `until_ms` after midnight are dropped, so that the next day needs yesterday's plan
    only in its first hours, whether a run starts before or after then."""
    day_ms = world.base_ms(plan.day + 1) - plan.base_ms
    end = plan.t_arr.astype(np.int64) + MIN_MS
    trips = np.flatnonzero((end > day_ms) & (end <= day_ms + until_ms))
    pays = np.flatnonzero((plan.p_ts >= day_ms) & (plan.p_ts < day_ms + until_ms))
    t_cols: list[np.ndarray] = [
        plan.t_person,
        plan.t_seq,
        plan.t_dep,
        plan.t_arr,
        plan.t_origin,
        plan.t_dest,
        plan.t_crowd,
    ]
    p_cols: list[np.ndarray] = [plan.p_ts, plan.p_person, plan.p_seq, plan.p_where, plan.p_cat, plan.p_style]
    return _plan_of(world, plan.day, plan.base_ms, [c[trips] for c in t_cols], [c[pays] for c in p_cols])
