"""The city's fixed places as arrays: transit stops, merchants, and the spots where people stay.

Codes instead of objects: a stop is an int (>= 0 a named station or stop of the city file, < 0 a node of
the local bus-stop grid), a merchant is an int (>= 0 a cluster or venue merchant, < 0 a local merchant
on the shop grid), a place is an int (HOME, ANCHOR, or a spot index). Strings appear only when encoding.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from cityscreen.city import City, Venue
from cityscreen.demography import MERCHANT_CATEGORIES
from services.generator.columnar.grid import (
    BUS_GRID_DEG,
    F64,
    I64,
    M_PER_DEG_LAT,
    Raster,
    clamp_into,
    distance_m,
    offset_spot,
    snap,
)
from services.generator.columnar.rand import NO_DAY, Draws

METRO_WALK_M = 1_300.0  # farther than this from a metro station, people take the bus or drive
BUS_WALK_M = 900.0
MERCHANTS_PER_CLUSTER = 60
VENUE_MERCHANTS = 40
SPOTS_PER_CLUSTER = 1000  # where people stand in a cluster: spread over its radius
VENUE_SPOTS = 1000
HOME, ANCHOR = -1, -2  # place codes of a person's own places; spots are >= 0
CATEGORIES = MERCHANT_CATEGORIES
AMOUNT_MEDIAN_CNY = np.array(
    [{"food": 32.0, "groceries": 58.0, "retail": 160.0, "transport": 14.0, "entertainment": 110.0,
      "services": 85.0, "travel": 380.0}[c] for c in CATEGORIES]
)  # fmt: skip
CAT = {c: i for i, c in enumerate(CATEGORIES)}
STREAM_MERCHANTS, STREAM_VENUE_SPOTS = 9001, 9002


class Stops:
    """Metro stations and bus stops of the city file, plus the local bus-stop grid where none is near."""

    def __init__(self, city: City) -> None:
        self.box = city.bbox
        named = [(s, ln.id, 0) for ln in city.metro_lines for s in ln.stations]
        named += [(s, ln.id, 1) for ln in city.bus_lines for s in ln.stations]
        self.n_metro = sum(len(ln.stations) for ln in city.metro_lines)
        self.ids = [s.id for s, _, _ in named]
        metro_lines = [ln.id for ln in city.metro_lines]
        self.lines = [*metro_lines, *(ln.id for ln in city.bus_lines), "bus-local"]
        self.local_line = len(self.lines) - 1
        self.shuttle_base = len(self.lines)  # line index of the shuttle bus replacing metro line i
        self.lines += [f"shuttle-{line}" for line in metro_lines]
        self.lat = np.array([s.lat for s, _, _ in named], dtype=np.float64)
        self.lng = np.array([s.lng for s, _, _ in named], dtype=np.float64)
        self.mode = np.array([m for _, _, m in named], dtype=np.uint8)  # 0 metro, 1 bus
        self.line = np.array([self.lines.index(line) for _, line, _ in named], dtype=np.int64)
        self.metro = Raster(self.box, self.lat[: self.n_metro], self.lng[: self.n_metro])
        self.bus = Raster(self.box, self.lat[self.n_metro :], self.lng[self.n_metro :])
        step_lat, step_lng = BUS_GRID_DEG
        self.iy0, self.ix0 = math.ceil(self.box.min_lat / step_lat), math.ceil(self.box.min_lng / step_lng)
        self.grid_nx = math.floor(self.box.max_lng / step_lng) - self.ix0 + 1

    def stop_for(self, lat: F64, lng: F64, bus_only: bool = False) -> I64:
        """Metro within walking distance, else a named bus stop, else the local grid's stop."""
        m_idx, m_d = self.metro.nearest(lat, lng)
        b_idx, b_d = self.bus.nearest(lat, lng)
        code = np.where(b_d <= BUS_WALK_M, b_idx + self.n_metro, self.grid_code(lat, lng))
        return code if bus_only else np.where(m_d <= METRO_WALK_M, m_idx, code)

    def grid_code(self, lat: F64, lng: F64) -> I64:
        iy, ix, _, _ = snap(lat, lng, *BUS_GRID_DEG, self.box)
        return -1 - ((iy - self.iy0) * self.grid_nx + (ix - self.ix0))

    def grid_iy_ix(self, code: I64) -> tuple[I64, I64]:
        iy, ix = np.divmod(-1 - code, self.grid_nx)
        return iy + self.iy0, ix + self.ix0

    def position(self, code: I64) -> tuple[F64, F64]:
        named = code >= 0
        iy, ix = self.grid_iy_ix(np.where(named, -1, code))
        g_lat, g_lng = clamp_into(
            self.box, np.round(iy * BUS_GRID_DEG[0], 5), np.round(ix * BUS_GRID_DEG[1], 5)
        )
        safe = np.where(named, code, 0)
        return np.where(named, self.lat[safe], g_lat), np.where(named, self.lng[safe], g_lng)

    def is_metro(self, code: I64) -> npt.NDArray[np.bool_]:
        return (code >= 0) & (code < self.n_metro)

    def line_of(self, code: I64) -> I64:
        return np.where(code >= 0, self.line[np.maximum(code, 0)], self.local_line)


class Merchants:
    """Merchants of the clusters (60 each, with a category drawn from the cluster's mix) and of the
    stadium venue (40), then local merchants on the shop grid (codes < 0, made up at payment time)."""

    def __init__(self, city: City, seed: int, venue: Venue | None) -> None:
        self.box = city.bbox
        clusters = city.merchant_clusters
        draws = Draws(seed, NO_DAY)
        ids: list[str] = []
        cats, lats, lngs = [], [], []
        k = np.arange(MERCHANTS_PER_CLUSTER)
        for c, m in enumerate(clusters):
            mix = np.array([m.categories.get(cat, 0.0) for cat in CATEGORIES])
            cats.append(draws.choice(c * 1000 + k, STREAM_MERCHANTS, mix) if mix.sum() > 0 else k * 0)
            lat, lng = offset_spot(np.full(len(k), m.lat), np.full(len(k), m.lng), k, m.radius_m, self.box)
            lats.append(lat)
            lngs.append(lng)
            ids += [f"{m.id}-{i:02d}" for i in k]
        self.venue_base = len(ids)
        if venue is not None:
            kv = np.arange(VENUE_MERCHANTS)
            lat, lng = offset_spot(
                np.full(len(kv), venue.lat), np.full(len(kv), venue.lng), kv, 250.0, self.box
            )
            lats.append(lat)
            lngs.append(lng)
            cats.append(np.zeros(len(kv), dtype=np.int64))  # the category is drawn per payment
            ids += [f"{venue.id}-{i:02d}" for i in kv]
        self.ids = ids
        self.cat = np.concatenate(cats).astype(np.int64) if cats else np.zeros(0, dtype=np.int64)
        self.lat = np.concatenate(lats) if lats else np.zeros(0)
        self.lng = np.concatenate(lngs) if lngs else np.zeros(0)
        self.cluster_lat = np.array([m.lat for m in clusters])
        self.cluster_lng = np.array([m.lng for m in clusters])
        self.cluster_reach_m = np.array([max(m.radius_m, 800.0) for m in clusters])
        self.nearest_cluster = Raster(self.box, self.cluster_lat, self.cluster_lng)

    def cluster_near(self, lat: F64, lng: F64) -> I64:
        """The nearest cluster when the point lies within its reach, else -1."""
        idx, d = self.nearest_cluster.nearest(lat, lng)
        return np.where(d <= self.cluster_reach_m[np.maximum(idx, 0)], idx, -1)


class Spots:
    """Where people stay away from home and work: spread over each cluster, and around the venue."""

    def __init__(self, city: City, seed: int, stops: Stops, venue: Venue | None) -> None:
        box = city.bbox
        k = np.arange(SPOTS_PER_CLUSTER)
        lats, lngs = [], []
        for m in city.merchant_clusters:
            lat, lng = offset_spot(np.full(len(k), m.lat), np.full(len(k), m.lng), k, m.radius_m, box)
            lats.append(lat)
            lngs.append(lng)
        self.venue_base = len(city.merchant_clusters) * SPOTS_PER_CLUSTER
        if venue is not None:
            draws = Draws(seed, NO_DAY)
            kv = np.arange(VENUE_SPOTS)
            d_lat = draws.normal(kv, STREAM_VENUE_SPOTS) * 0.0012
            d_lng = draws.normal(kv, STREAM_VENUE_SPOTS + 1) * 0.0012
            lat, lng = clamp_into(box, venue.lat + d_lat, venue.lng + d_lng)
            lats.append(lat)
            lngs.append(lng)
        self.lat, self.lng = np.concatenate(lats), np.concatenate(lngs)
        self.stop = stops.stop_for(self.lat, self.lng)
        self.bus_stop = stops.stop_for(self.lat, self.lng, bus_only=True)


def near(lat: F64, lng: F64, radius_m: float | F64, dy: F64, dx: F64, city: City) -> tuple[F64, F64]:
    """A point about `radius_m` from (lat, lng), from two standard normals, kept inside the city."""
    d_lat = dy * radius_m / M_PER_DEG_LAT
    d_lng = dx * radius_m / M_PER_DEG_LAT / np.cos(np.radians(lat))
    return clamp_into(city.bbox, lat + d_lat, lng + d_lng)


__all__ = ["ANCHOR", "HOME", "Merchants", "Spots", "Stops", "distance_m", "near"]
