"""Events of a time slice as columns: idle phones' location updates, trips' taps and handovers, and
payments, each kind sorted by (ts_ms, person, seq) like the old generator's stream.

`seq` tells a person's events apart: 0 an idle update, 1 + 2 * slot + day parity a payment, and
TRIP_SEQ + 64 * (trip + 8 * day parity) + step a trip's events (0 leaving, 1 tap-in, 2 tap-out,
3 arrival, 4 + k the k-th handover). Event ids are a keyed permutation of (person, ts_ms, seq).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from services.generator.columnar.grid import I64, TOWER_DEG, snap
from services.generator.columnar.payments import resolve_payments
from services.generator.columnar.plans import DayPlan
from services.generator.columnar.trips import HANDOVER_MS, TRANSIT, TripDetail, trip_details
from services.generator.columnar.world import MIN_MS, World

Cols = dict[str, np.ndarray[Any, Any]]
TRIP_SEQ = 32
WARM_SEQ = 2047  # the warm-start update: above every trip's seq, below the 11 bits a seq has
KINDS = ("sim", "payment", "transit")
DETAIL_ROWS = 1 << 20
MAX_CHUNKS = 12  # small chunks of trips under way kept apart before they are joined
JOIN_BELOW = 1 << 18  # trips: a chunk this small is joined with others


@dataclass
class Slice:
    """The events with lo_ms <= ts_ms < hi_ms, per kind, as columns of equal length."""

    lo_ms: int
    hi_ms: int
    cols: dict[str, Cols] = field(default_factory=dict)

    def count(self, kind: str | None = None) -> int:
        kinds = [kind] if kind else list(self.cols)
        return sum(len(self.cols[k]["ts_ms"]) for k in kinds if self.cols.get(k))


@dataclass
class _Trips:
    """Trips with events still to come, and their details: computed once, when a trip starts, and
    carried from slice to slice (a trip spans tens of one-minute slices)."""

    person: I64
    seq0: I64  # the seq of the trip's first event
    det: TripDetail

    def subset(self, keep: np.ndarray[Any, Any]) -> _Trips:
        det = TripDetail(*(getattr(self.det, f.name)[keep] for f in fields(TripDetail)))
        return _Trips(self.person[keep], self.seq0[keep], det)

    @staticmethod
    def join(parts: list[_Trips]) -> _Trips:
        det = TripDetail(
            *(np.concatenate([getattr(p.det, f.name) for p in parts]) for f in fields(TripDetail))
        )
        return _Trips(np.concatenate([p.person for p in parts]), np.concatenate([p.seq0 for p in parts]), det)


@dataclass
class _Cursor:
    """Where a run stands in a plan: trips departed before hi_ms that may still have events."""

    hi_ms: int
    next_row: int
    chunks: list[_Trips]  # one per slice they started in: joined only now and then, copies cost


def _carry(chunks: list[_Trips], hi_ms: int) -> list[_Trips]:
    """The chunks of trips with events at or after hi_ms. A chunk is cut down once half its trips
    have ended, and the small chunks (one per slice) are joined when they become many; a big chunk
    (the millions under way when a run starts) is never copied whole alongside itself."""
    going = []
    for chunk in chunks:
        alive = chunk.det.sim_arr_ms >= hi_ms
        n_alive = int(alive.sum())
        if n_alive:
            going.append(chunk if n_alive * 2 > len(alive) else chunk.subset(alive))
    small = [c for c in going if len(c.person) < JOIN_BELOW]
    if len(small) > MAX_CHUNKS:
        going = [c for c in going if len(c.person) >= JOIN_BELOW] + [_Trips.join(small)]
    return going


class _Parts:
    def __init__(self) -> None:
        self.parts: dict[str, list[Cols]] = {k: [] for k in KINDS}

    def add(self, kind: str, keep: np.ndarray[Any, Any] | None = None, **cols: np.ndarray[Any, Any]) -> None:
        self.parts[kind].append({k: (v if keep is None else v[keep]) for k, v in cols.items()})

    def joined(self, kind: str) -> Cols:
        parts = [p for p in self.parts[kind] if len(p["ts_ms"])]
        if not parts:
            return {}
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def sort_cols(cols: Cols, lo_ms: int) -> Cols:
    """Rows ordered by (ts_ms, person, seq): one int64 key, ts relative to the slice start."""
    if not cols:
        return cols
    key = ((cols["ts_ms"] - lo_ms) << 38) | (cols["person"].astype(np.int64) << 11) | cols["seq"]
    order = np.argsort(key, kind="stable")
    return {k: v[order] for k, v in cols.items()}


class Emitter:
    """Turns day plans into the events of consecutive slices (a slice never crosses local midnight)."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.cursors: dict[tuple[int, bool], _Cursor] = {}

    def emit(self, lo_ms: int, hi_ms: int, today: DayPlan, spill: DayPlan | None, warm_ms: int = 0) -> Slice:
        parts = _Parts()
        self._idle(parts, lo_ms, hi_ms, today)
        if warm_ms > 0:
            self._warm(parts, lo_ms, min(lo_ms + warm_ms, hi_ms), today)
        for plan, spilled in ((spill, True), (today, False)):
            if plan is None:
                continue
            for trips in self._active(lo_ms, hi_ms, plan, spilled):
                self._trips(parts, lo_ms, hi_ms, trips)
            span = np.array([lo_ms - plan.base_ms, hi_ms - plan.base_ms], dtype=plan.p_ts.dtype)
            rows = np.arange(*np.searchsorted(plan.p_ts, span))  # same dtypes: no copy of the column
            if len(rows):
                parts.add("payment", **resolve_payments(self.world, plan, rows))
        out = Slice(lo_ms, hi_ms)
        for kind in KINDS:
            cols = parts.joined(kind)
            if kind == "sim" and cols:
                cols["iy"], cols["ix"], cols["lat"], cols["lng"] = snap(
                    cols["lat"], cols["lng"], TOWER_DEG, TOWER_DEG, self.world.city.bbox
                )
            if kind == "transit" and cols:
                self._stops(cols)
            out.cols[kind] = sort_cols(cols, lo_ms)
        return out

    def _stops(self, cols: Cols) -> None:
        """Line, mode and position of each tap's stop; a shuttle bus stands in for a closed line."""
        stops, outage = self.world.stops, self.world.scenarios.outage
        cols["lat"], cols["lng"] = stops.position(cols["stop"])
        cols["line"] = stops.line_of(cols["stop"])
        cols["mode"] = np.where(stops.is_metro(cols["stop"]) & ~cols["shuttle"], 0, 1)
        if outage is not None and outage.line in stops.lines:
            shuttle_line = stops.shuttle_base + stops.lines.index(outage.line)
            cols["line"] = np.where(cols["shuttle"], shuttle_line, cols["line"])

    def _active(self, lo_ms: int, hi_ms: int, plan: DayPlan, spilled: bool) -> list[_Trips]:
        """Trips with events possibly in [lo, hi): those carried from the previous slice, and those
        departing in this one. A run that starts anew (or skips) finds them with one scan."""
        key = (plan.day, spilled)
        cur = self.cursors.get(key)
        if cur is None or cur.hi_ms != lo_ms:
            # a (re)start: the old carry is dropped before the new one is made, both can be GBs
            self.cursors.pop(key, None)
            cur = None
            lo_rel = lo_ms - plan.base_ms
            first = int(np.searchsorted(plan.t_dep, np.int32(lo_rel)))
            # under way: departed, and the arrival update (within a minute of arriving) still to come
            under_way = plan.t_arr[:first].astype(np.int64) + MIN_MS > lo_rel
            cur = _Cursor(lo_ms, first, self._details(plan, np.flatnonzero(under_way)))
        last = int(np.searchsorted(plan.t_dep, np.int32(hi_ms - plan.base_ms)))
        chunks = [*cur.chunks, *self._details(plan, np.arange(cur.next_row, last))]
        self.cursors[key] = _Cursor(hi_ms, last, _carry(chunks, hi_ms))
        self.cursors = {k: v for k, v in self.cursors.items() if k[0] >= plan.day - 1}
        return chunks

    def _details(self, plan: DayPlan, rows: I64) -> list[_Trips]:
        """Details of trips, a million at a time: a megacity run that starts at 08:00 finds millions
        under way, and the temporaries of one call are some forty arrays of its size."""
        out = []
        for lo in range(0, len(rows), DETAIL_ROWS):
            cols = plan.trips(rows[lo : lo + DETAIL_ROWS])
            seq0 = TRIP_SEQ + 64 * (cols.seq + 8 * (plan.day % 2))
            out.append(_Trips(cols.person, seq0, trip_details(self.world, cols, plan.day)))
        return out

    def _trips(self, parts: _Parts, lo_ms: int, hi_ms: int, trips: _Trips) -> None:
        if not len(trips.person):
            return
        det, seq0, person = trips.det, trips.seq0, trips.person

        def within(ts: I64) -> np.ndarray[Any, Any]:
            return (ts >= lo_ms) & (ts < hi_ms)

        for ts, lat, lng, step in (
            (det.sim_dep_ms, det.o_lat, det.o_lng, 0),
            (det.sim_arr_ms, det.d_lat, det.d_lng, 3),
        ):
            parts.add("sim", within(ts), ts_ms=ts, person=person, seq=seq0 + step, lat=lat, lng=lng)
        ride = det.kind == TRANSIT
        for ts, stop, tap in ((det.tap_in_ms, det.stop_a, 0), (det.tap_out_ms, det.stop_b, 1)):
            keep = ride & within(ts)
            parts.add("transit", keep, ts_ms=ts, person=person, seq=seq0 + 1 + tap, tap=np.full(len(ts), tap),
                      stop=stop, shuttle=det.shuttle)  # fmt: skip
        self._handovers(parts, lo_ms, hi_ms, person, seq0, det)

    @staticmethod
    def _handovers(parts: _Parts, lo_ms: int, hi_ms: int, person: I64, seq0: I64, det: TripDetail) -> None:
        """The k-th handover at move_ms + k * HANDOVER_MS (1 <= k <= dur // HANDOVER_MS), only those
        inside the slice: a trip overlapping many slices costs only its own events in each."""
        steps = (det.move_dur_ms // HANDOVER_MS).astype(np.int64)
        k0 = np.maximum(1, -(-(lo_ms - det.move_ms) // HANDOVER_MS))
        k1 = np.minimum(steps, -(-(hi_ms - det.move_ms) // HANDOVER_MS) - 1)
        count = np.maximum(0, k1 - k0 + 1)
        total = int(count.sum())
        if not total:
            return
        trip = np.repeat(np.arange(len(count)), count)
        k = k0[trip] + np.arange(total) - np.repeat(np.cumsum(count) - count, count)
        frac = k * HANDOVER_MS / det.move_dur_ms[trip]
        lat = det.m_lat0[trip] + (det.m_lat1[trip] - det.m_lat0[trip]) * frac
        lng = det.m_lng0[trip] + (det.m_lng1[trip] - det.m_lng0[trip]) * frac
        parts.add("sim", ts_ms=det.move_ms[trip] + k * HANDOVER_MS, person=person[trip],
                  seq=seq0[trip] + 4 + np.minimum(k, 59), lat=lat, lng=lng)  # fmt: skip

    def _warm(self, parts: _Parts, lo_ms: int, hi_ms: int, plan: DayPlan) -> None:
        """A location update of every person in [lo, hi), spread evenly in phase order: a warm start.
        A screen that counts people present as a stock would otherwise fill up over the 30 minutes it
        takes every idle phone to report (as if the network had just come up)."""
        n = self.world.n
        slot = np.arange(n, dtype=np.int64) * self.world.phase_stride() % max(1, n)
        ts = lo_ms + slot * (hi_ms - lo_ms) // max(1, n)
        person = np.arange(n, dtype=np.int64)
        place, _ = where_at(plan, person, ts)  # a person on the move reports from where they set out
        lat, lng = self.world.position(person, place)
        parts.add("sim", ts_ms=ts, person=person, seq=np.full(n, WARM_SEQ, dtype=np.int64), lat=lat, lng=lng)

    def _idle(self, parts: _Parts, lo_ms: int, hi_ms: int, plan: DayPlan) -> None:
        """Location updates of phones at rest, every 30 min at each person's phase; none while moving."""
        person, ts = self.world.idle_persons(lo_ms, hi_ms)
        place, moving = where_at(plan, person, ts)
        keep = ~moving
        person, ts, place = person[keep], ts[keep], place[keep]
        lat, lng = self.world.position(person, place)
        parts.add("sim", ts_ms=ts, person=person, seq=np.zeros(len(ts), dtype=np.int64), lat=lat, lng=lng)


def where_at(plan: DayPlan, person: I64, ts_ms: I64) -> tuple[I64, np.ndarray[Any, Any]]:
    """(place, moving) of persons at times of the plan's day: the last trip's destination, or home."""
    start = plan.person_start[person]
    count = plan.person_start[person + 1] - start
    place = np.full(len(person), -1, dtype=np.int64)  # HOME
    moving = np.zeros(len(person), dtype=bool)
    for j in range(int(count.max()) if len(count) else 0):
        has = j < count
        row = plan.by_person[np.where(has, start + j, 0)]
        dep = plan.base_ms + plan.t_dep[row].astype(np.int64)
        arr = plan.base_ms + plan.t_arr[row].astype(np.int64)
        moving |= has & (dep <= ts_ms) & (ts_ms < arr)
        place = np.where(has & (arr <= ts_ms), plan.t_dest[row], place)
    return place, moving
