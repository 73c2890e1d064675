"""Grids over the city, vectorised: towers, local bus stops and local merchants snap to the nearest
grid node inside the bbox (the ingest edge dead-letters any position outside it)."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from cityscreen.city import BBox

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

M_PER_DEG_LAT = 111_320.0
TOWER_DEG = 0.006  # towers on a ~650 m grid
BUS_GRID_DEG = (0.009, 0.0098)  # local bus stops on a ~1 km grid
SHOP_GRID_DEG = 0.003  # local merchants on a ~330 m grid


def distance_m(lat1: F64, lng1: F64, lat2: F64, lng2: F64) -> F64:
    """Equirectangular distance: exact enough inside one city."""
    dx = (lng2 - lng1) * M_PER_DEG_LAT * np.cos(np.radians((lat1 + lat2) / 2))
    dy = (lat2 - lat1) * M_PER_DEG_LAT
    return np.hypot(dx, dy)


def clamp_into(box: BBox, lat: F64, lng: F64) -> tuple[F64, F64]:
    """Points outside the bbox moved onto its edge."""
    return np.clip(lat, box.min_lat, box.max_lat), np.clip(lng, box.min_lng, box.max_lng)


def snap(lat: F64, lng: F64, step_lat: float, step_lng: float, box: BBox) -> tuple[I64, I64, F64, F64]:
    """(iy, ix, lat, lng) of the grid node nearest each point among the nodes inside `box` (the
    vectorised twin of services.generator.population.grid_point: both round half to even)."""
    iy = _index_inside(lat, step_lat, box.min_lat, box.max_lat)
    ix = _index_inside(lng, step_lng, box.min_lng, box.max_lng)
    # rounding to 5 decimals can step a node on the edge over it by float error: clamp once more
    s_lat, s_lng = clamp_into(box, np.round(iy * step_lat, 5), np.round(ix * step_lng, 5))
    return iy, ix, s_lat, s_lng


def _index_inside(value: F64, step: float, lo: float, hi: float) -> I64:
    return np.clip(np.rint(value / step), math.ceil(lo / step), math.floor(hi / step)).astype(np.int64)


def offset_spot(lat: F64, lng: F64, k: I64, radius_m: float | F64, box: BBox) -> tuple[F64, F64]:
    """A fixed spot for merchant k of a place (a golden-angle spiral): merchants do not move."""
    angle = k * 2.399963
    frac = np.sqrt(((k * 7919) % 1000) / 1000)
    d = radius_m * frac / M_PER_DEG_LAT
    return clamp_into(
        box,
        np.round(lat + d * np.sin(angle), 5),
        np.round(lng + d * np.cos(angle) / np.cos(np.radians(lat)), 5),
    )


class Raster:
    """The index of the nearest of some points for any position: a lookup in a precomputed grid.

    The answer is exact for the grid cell's centre; for a position elsewhere in a ~100 m cell it can
    pick a neighbour that is a few tens of metres farther, which no rider would notice. It makes a
    lookup O(1) instead of O(points), and 17.5 million homes need one each."""

    MAX_CELLS = 1_000_000

    def __init__(self, box: BBox, lat: F64, lng: F64) -> None:
        self.box, self.lat, self.lng = box, lat, lng
        area = (box.max_lat - box.min_lat) * (box.max_lng - box.min_lng)
        self.step = max(0.001, math.sqrt(area / self.MAX_CELLS))
        self.ny = int((box.max_lat - box.min_lat) / self.step) + 1
        self.nx = int((box.max_lng - box.min_lng) / self.step) + 1
        self.table = np.full(self.ny * self.nx, -1, dtype=np.int32)
        if len(lat):
            # planar squared distances with one cosine for the city: enough to rank the points
            cos = math.cos(math.radians((box.min_lat + box.max_lat) / 2))
            c_lat = box.min_lat + (np.arange(self.ny) + 0.5) * self.step
            c_lng = box.min_lng + (np.arange(self.nx) + 0.5) * self.step
            dx2 = ((c_lng[:, None] - lng[None, :]) * cos) ** 2  # (nx, points)
            for iy in range(self.ny):
                d2 = dx2 + ((c_lat[iy] - lat) ** 2)[None, :]
                self.table[iy * self.nx : (iy + 1) * self.nx] = np.argmin(d2, axis=1)

    def nearest(self, lat: F64, lng: F64) -> tuple[I64, F64]:
        """(index, distance in m) of the nearest point; (-1, inf) when there are none."""
        if not len(self.lat):
            return np.full(len(lat), -1, dtype=np.int64), np.full(len(lat), np.inf)
        cy = np.clip(((lat - self.box.min_lat) / self.step).astype(np.int64), 0, self.ny - 1)
        cx = np.clip(((lng - self.box.min_lng) / self.step).astype(np.int64), 0, self.nx - 1)
        idx = self.table[cy * self.nx + cx].astype(np.int64)
        return idx, distance_m(lat, lng, self.lat[idx], self.lng[idx])
