"""Trips: from a departure, where and when the rider taps in and out, moves, and arrives.

A pure function of (world, trip columns, day): the day plan calls it to learn arrival times, and the
emission calls it again for the trips of a time slice, getting the same answer from the same draws.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from services.generator.columnar.grid import F64, I64, distance_m
from services.generator.columnar.rand import Draws
from services.generator.columnar.world import MIN_MS, World, in_clock_window

HANDOVER_MS = 8 * MIN_MS  # a moving phone changes cell about this often
WALK_MPS, ROAD_MPS = 1.3, 7.0  # on foot; taxi or car in city traffic
TRANSIT_MIN_M = 1_500.0  # shorter trips are walked
ROAD, TRANSIT, TAXI = 0, 1, 2  # TAXI: walked to a closed metro line, then took a taxi
STADIUM_TRANSIT_P = 0.85
S_TRIP = 20_000  # draw streams of trip j: S_TRIP + 16 * j + k


@dataclass
class TripCols:
    """The plan's columns of some trips (times are absolute UTC ms here)."""

    person: I64
    seq: I64  # trip number within the person's day
    dep_ms: I64
    origin: I64  # place codes
    dest: I64
    crowd: npt.NDArray[np.bool_]  # a stadium trip: transit with STADIUM_TRANSIT_P, not the person's habit


@dataclass
class TripDetail:
    kind: I64  # ROAD | TRANSIT | TAXI
    o_lat: F64
    o_lng: F64
    d_lat: F64
    d_lng: F64
    sim_dep_ms: I64  # the phone's update as its owner leaves
    tap_in_ms: I64
    tap_out_ms: I64
    stop_a: I64
    stop_b: I64
    shuttle: npt.NDArray[np.bool_]  # the metro line is down: a shuttle bus replaces it
    move_ms: I64  # handovers from move_ms every HANDOVER_MS while moving ...
    move_dur_ms: F64
    m_lat0: F64  # ... from here
    m_lng0: F64
    m_lat1: F64  # ... to here
    m_lng1: F64
    arr_ms: I64
    sim_arr_ms: I64  # the phone's update on arrival


def trip_details(world: World, t: TripCols, day: int) -> TripDetail:
    draws = Draws(world.seed, day)

    def u(k: int) -> F64:
        return draws.uniform(t.person, S_TRIP + 16 * t.seq + k)

    def ints(k: int, lo: int, hi: int) -> I64:
        return lo + (u(k) * (hi - lo + 1)).astype(np.int64)

    o_lat, o_lng = world.position(t.person, t.origin)
    d_lat, d_lng = world.position(t.person, t.dest)
    dist = distance_m(o_lat, o_lng, d_lat, d_lng)
    habit = world.pop.uses_transit[t.person]
    transit = np.where(t.crowd, u(0) < STADIUM_TRANSIT_P, habit) & (dist > TRANSIT_MIN_M)
    dep = t.dep_ms
    # the stops, then bus at both ends when only one end has the metro
    none = np.zeros(len(dep), dtype=bool)
    a = world.stop_at(t.person, t.origin, o_lat, o_lng, none)
    b = world.stop_at(t.person, t.dest, d_lat, d_lng, none)
    mixed = world.stops.is_metro(a) != world.stops.is_metro(b)
    if mixed.any():
        a = np.where(mixed, world.stop_at(t.person, t.origin, o_lat, o_lng, mixed), a)
        b = np.where(mixed, world.stop_at(t.person, t.dest, d_lat, d_lng, mixed), b)
    transit &= a != b  # both ends nearest the same stop: nobody taps in and out there, they go by road
    a_lat, a_lng = world.stops.position(a)
    b_lat, b_lng = world.stops.position(b)
    tap_in = dep + np.rint(distance_m(o_lat, o_lng, a_lat, a_lng) / WALK_MPS * 1000).astype(np.int64)
    tap_in += ints(1, 60_000, 180_000)
    shuttle, taxi = _outage(world, a, b, tap_in, transit, u(2))
    metro = world.stops.is_metro(a) & ~shuttle
    ride_m = distance_m(a_lat, a_lng, b_lat, b_lng)
    changes = world.stops.line_of(a) != world.stops.line_of(b)
    ride_ms = np.where(
        metro,
        ints(3, 1, 5) * MIN_MS + ride_m * 1.35 / 10.0 * 1000 + np.where(changes, 4 * MIN_MS, 0),
        ints(4, 2, 10) * MIN_MS + ride_m * 1.4 / 5.5 * 1000,
    ) * np.where(shuttle, 1.8, 1.0)
    tap_out = tap_in + np.rint(ride_ms).astype(np.int64)
    walk_out = np.rint(distance_m(b_lat, b_lng, d_lat, d_lng) / WALK_MPS * 1000).astype(np.int64)
    speed = np.where(dist < TRANSIT_MIN_M, WALK_MPS, ROAD_MPS)
    road_ms = dist / speed * 1000 + ints(5, 2, 8) * MIN_MS
    taxi_ms = dist / ROAD_MPS * 1000
    kind = np.where(transit, np.where(taxi, TAXI, TRANSIT), ROAD)
    move_ms = np.where(kind == ROAD, dep, tap_in)
    move_dur = np.select([kind == ROAD, kind == TAXI], [road_ms, taxi_ms], ride_ms)
    ride = kind == TRANSIT
    arr = np.where(ride, tap_out + walk_out, move_ms + np.rint(move_dur).astype(np.int64))
    return TripDetail(
        kind, o_lat, o_lng, d_lat, d_lng, dep + ints(6, 0, 59_999), tap_in, tap_out, a, b, shuttle,
        move_ms, move_dur, np.where(ride, a_lat, o_lat), np.where(ride, a_lng, o_lng),
        np.where(ride, b_lat, d_lat), np.where(ride, b_lng, d_lng), arr, arr + ints(7, 0, 59_999),
    )  # fmt: skip


def _outage(
    world: World, a: I64, b: I64, tap_in: I64, transit: npt.NDArray[np.bool_], u: F64
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """(shuttle, taxi): riders of a line that is down take its shuttle bus, or give up (30%) and take
    a taxi."""
    outage = world.scenarios.outage
    none = np.zeros(len(a), dtype=bool)
    if outage is None or outage.line not in world.stops.lines:
        return none, none
    line = world.stops.lines.index(outage.line)
    stops = world.stops
    hit = transit & stops.is_metro(a) & ((stops.line_of(a) == line) | (stops.line_of(b) == line))
    hit &= in_clock_window(world, tap_in, outage.start, outage.end)
    return hit & (u >= 0.3), hit & (u < 0.3)
