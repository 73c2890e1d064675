"""The seeded synthetic population: who lives where, works where, and which identifiers they carry.

The per-person generator that preceded the columnar engine (services.generator.columnar), which
`generate`, `record`, `up` and the bench loads now use. Kept as the peer of `cityscreen bench
generator` (measured in the same run) and for its scalar grid_point, which the engine's vectorised
snap is tested against.

Everything is drawn from one numpy generator seeded by `seed`, so a (city, size, seed) triple always
yields the same people. Identifiers are unique by construction (an affine permutation of the person
index), so no two persons ever share an IMSI, MSISDN, payment account or fare card.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cityscreen.city import BBox, City, District, MetroLine
from cityscreen.events import AGE_BANDS

# Shenzhen is young: the 2020 census puts about 80% of residents at 15-59.
AGE_BAND_SHARES = (0.17, 0.12, 0.27, 0.20, 0.12, 0.07, 0.05)
AGE_BAND_YEARS = ((0, 17), (18, 24), (25, 34), (35, 44), (45, 54), (55, 64), (65, 90))
VISITOR_AGE_SHARES = (0.03, 0.17, 0.32, 0.24, 0.14, 0.07, 0.03)
METRO_WALK_M = 1_300.0  # farther than this from a metro station, people take the bus or drive
BUS_WALK_M = 900.0
M_PER_DEG_LAT = 111_320.0

Role = str  # "worker" | "student" | "pupil" | "retiree" | "homemaker" | "visitor" | "tourist"


@dataclass(slots=True)
class Stop:
    id: str
    line: str
    mode: str  # "metro" | "bus"
    lat: float
    lng: float


@dataclass(slots=True)
class Person:
    idx: int
    role: Role
    gender: str
    age: int
    origin: str
    # as registered at SIM purchase: a pupil's SIM is registered to a parent
    reg_gender: str
    reg_age: int
    home: tuple[float, float]  # (lat, lng)
    anchor: tuple[float, float] | None  # work or school (lat, lng)
    home_stop: Stop | None
    anchor_stop: Stop | None
    uses_transit: bool
    imsi: str
    msisdn: str
    account: str
    card: str
    phase_ms: int  # offset of the periodic location updates, spreads them over the period


def distance_m(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    """Equirectangular distance: exact enough inside one city."""
    dx = (lng2 - lng1) * M_PER_DEG_LAT * math.cos(math.radians((lat1 + lat2) / 2))
    dy = (lat2 - lat1) * M_PER_DEG_LAT
    return math.hypot(dx, dy)


class StopIndex:
    """Nearest metro station / bus stop lookups, vectorised over all stops of a mode."""

    def __init__(self, metro: list[MetroLine], bus: list[MetroLine]) -> None:
        self.stops: dict[str, list[Stop]] = {
            "metro": [Stop(s.id, ln.id, "metro", s.lat, s.lng) for ln in metro for s in ln.stations],
            "bus": [Stop(s.id, ln.id, "bus", s.lat, s.lng) for ln in bus for s in ln.stations],
        }
        self._xy = {
            mode: np.array([(s.lat, s.lng) for s in stops]) if stops else np.zeros((0, 2))
            for mode, stops in self.stops.items()
        }

    def nearest(self, lat: float, lng: float, mode: str) -> tuple[Stop | None, float]:
        xy = self._xy[mode]
        if not len(xy):
            return None, math.inf
        dy = (xy[:, 0] - lat) * M_PER_DEG_LAT
        dx = (xy[:, 1] - lng) * M_PER_DEG_LAT * math.cos(math.radians(lat))
        d2 = dx * dx + dy * dy
        i = int(np.argmin(d2))
        return self.stops[mode][i], float(math.sqrt(d2[i]))


def clamp_into(box: BBox, lat: float, lng: float) -> tuple[float, float]:
    """The point, moved onto the bbox's edge if it lies outside: the ingest edge dead-letters any
    position outside the city, so the generator must never make one."""
    return min(max(lat, box.min_lat), box.max_lat), min(max(lng, box.min_lng), box.max_lng)


def grid_point(
    lat: float, lng: float, step_lat: float, step_lng: float, box: BBox
) -> tuple[int, int, float, float]:
    """(iy, ix, lat, lng) of the grid node nearest the point among the nodes inside `box`: rounding
    alone snaps a point near the edge to a node past it (a tower at 22.854 N in a city ending at 22.85)."""
    iy = _index_inside(lat, step_lat, box.min_lat, box.max_lat)
    ix = _index_inside(lng, step_lng, box.min_lng, box.max_lng)
    # rounding to 5 decimals can still step a node on the edge over it by float error
    return (iy, ix, *clamp_into(box, round(iy * step_lat, 5), round(ix * step_lng, 5)))


def _index_inside(value: float, step: float, lo: float, hi: float) -> int:
    return min(max(round(value / step), math.ceil(lo / step)), math.floor(hi / step))


def grid_bus_stop(lat: float, lng: float, district: str, box: BBox) -> Stop:
    """A local bus stop on a ~1 km grid: the city's bus network where no named route is modelled."""
    iy, ix, s_lat, s_lng = grid_point(lat, lng, 0.009, 0.0098, box)
    return Stop(f"BUS-{iy}-{ix}", f"bus-{district}", "bus", s_lat, s_lng)


def _point_in_polygon(lat: float, lng: float, polygon: list[tuple[float, float]]) -> bool:
    inside = False
    n = len(polygon)
    for i in range(n):
        x1, y1 = polygon[i]
        x2, y2 = polygon[(i + 1) % n]
        if (y1 > lat) != (y2 > lat) and lng < (x2 - x1) * (lat - y1) / (y2 - y1) + x1:
            inside = not inside
    return inside


def _point_in(district: District, rng: np.random.Generator) -> tuple[float, float]:
    lngs = [p[0] for p in district.polygon]
    lats = [p[1] for p in district.polygon]
    for _ in range(100):
        lat, lng = rng.uniform(min(lats), max(lats)), rng.uniform(min(lngs), max(lngs))
        if _point_in_polygon(lat, lng, district.polygon):
            return float(lat), float(lng)
    return district.center[1], district.center[0]


def _near(
    lat: float, lng: float, radius_m: float, rng: np.random.Generator, box: BBox
) -> tuple[float, float]:
    dlat, dlng = rng.normal(0.0, radius_m / M_PER_DEG_LAT, 2)
    return clamp_into(box, float(lat + dlat), float(lng + dlng / math.cos(math.radians(lat))))


def _choice(rng: np.random.Generator, mix: dict[str, float]) -> str:
    keys = sorted(mix)
    p = np.array([mix[k] for k in keys], dtype=float)
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]


def _digits(idx: int, width: int, offset: int) -> str:
    # 7919 is coprime with 10**width, so idx -> digits is a bijection: identifiers never collide
    return f"{(idx * 7919 + offset) % 10**width:0{width}d}"


def build_population(city: City, persons: int, seed: int, *, extra_tourists: int = 0) -> list[Person]:
    """`persons` residents and visitors of `city`, plus `extra_tourists` (the tourist-influx scenario)."""
    rng = np.random.default_rng([seed, 1])
    stops = StopIndex(city.metro_lines, city.bus_lines)
    pops = np.array([d.population for d in city.districts], dtype=float)
    jobs = np.array([max(d.jobs, 1) for d in city.districts], dtype=float)
    id_offsets = [int(x) for x in rng.integers(0, 10**9, 4)]
    visitors = round(persons * city.visitor_share)
    out: list[Person] = []
    for idx in range(persons + extra_tourists):
        is_visitor = idx >= persons - visitors
        band = int(rng.choice(7, p=VISITOR_AGE_SHARES if is_visitor else AGE_BAND_SHARES))
        lo, hi = AGE_BAND_YEARS[band]
        age = int(rng.integers(lo, hi + 1))
        role = _role(band, is_visitor, idx >= persons, rng)
        home_d = city.districts[int(rng.choice(len(pops), p=pops / pops.sum()))]
        anchor: tuple[float, float] | None = None
        if role in ("visitor", "tourist"):
            cluster = city.merchant_clusters[int(rng.integers(len(city.merchant_clusters)))]
            # a hotel near a business or shopping area
            home = _near(cluster.lat, cluster.lng, 600, rng, city.bbox)
            if role == "visitor":
                cbd = max(city.merchant_clusters, key=lambda m: m.weight)
                anchor = _near(cbd.lat, cbd.lng, cbd.radius_m, rng, city.bbox)
            origin = _choice(rng, city.visitor_origin_mix or city.origin_mix)
        else:
            home = _point_in(home_d, rng)
            origin = _choice(rng, city.origin_mix)
            anchor = _anchor(city, role, home, home_d, jobs, rng)
        gender = "F" if rng.random() < 0.48 else "M"
        reg_gender, reg_age = gender, age
        if role == "pupil":
            reg_gender, reg_age = ("F" if rng.random() < 0.5 else "M"), age + int(rng.integers(24, 36))
        out.append(
            Person(
                idx=idx,
                role=role,
                gender=gender,
                age=age,
                origin=origin,
                reg_gender=reg_gender,
                reg_age=reg_age,
                home=(round(home[0], 5), round(home[1], 5)),
                anchor=(round(anchor[0], 5), round(anchor[1], 5)) if anchor else None,
                home_stop=None,
                anchor_stop=None,
                uses_transit=bool(
                    rng.random() < (0.9 if role in ("visitor", "tourist", "student") else 0.62)
                ),
                imsi="460" + ("00", "01", "11")[idx % 3] + _digits(idx, 10, id_offsets[0]),
                msisdn="86" + ("138", "159", "186", "177")[idx % 4] + _digits(idx, 8, id_offsets[1]),
                account="6217" + _digits(idx, 12, id_offsets[2]),
                card="SZT" + _digits(idx, 9, id_offsets[3]),
                phase_ms=int(rng.integers(0, 1_800_000)),
            )
        )
        _attach_stops(out[-1], stops, home_d.id, city.bbox)
    return out


def _role(band: int, is_visitor: bool, is_extra: bool, rng: np.random.Generator) -> Role:
    if is_extra:
        return "tourist"
    if is_visitor:
        return "visitor" if rng.random() < 0.45 else "tourist"
    u = float(rng.random())
    if band == 0:
        return "pupil"
    if band == 1:
        return "student" if u < 0.5 else ("worker" if u < 0.95 else "homemaker")
    if band in (2, 3, 4):
        return "worker" if u < 0.88 else "homemaker"
    if band == 5:
        return "worker" if u < 0.45 else "retiree"
    return "retiree"


def _anchor(
    city: City,
    role: Role,
    home: tuple[float, float],
    home_d: District,
    jobs: np.ndarray,
    rng: np.random.Generator,
) -> tuple[float, float] | None:
    if role == "pupil":
        return _near(home[0], home[1], 700, rng, city.bbox)  # a school in the neighbourhood
    if role == "student":
        campus = next((v for v in city.merchant_clusters if "tech" in v.id), city.merchant_clusters[0])
        return _near(campus.lat, campus.lng, 1500, rng, city.bbox)
    if role != "worker":
        return None
    district = (
        home_d if rng.random() < 0.4 else city.districts[int(rng.choice(len(jobs), p=jobs / jobs.sum()))]
    )
    clusters = [m for m in city.merchant_clusters if _point_in_polygon(m.lat, m.lng, district.polygon)]
    if clusters and rng.random() < 0.5:
        w = np.array([m.weight for m in clusters])
        m = clusters[int(rng.choice(len(clusters), p=w / w.sum()))]
        return _near(m.lat, m.lng, m.radius_m, rng, city.bbox)
    return _point_in(district, rng)


def _attach_stops(person: Person, stops: StopIndex, district: str, box: BBox) -> None:
    """Metro when both ends are near a station, else bus (a named route, or the local grid)."""
    ends = [person.home, person.anchor] if person.anchor else [person.home]
    metro = [stops.nearest(lat, lng, "metro") for lat, lng in ends]
    if all(d <= METRO_WALK_M for _, d in metro):
        person.home_stop = metro[0][0]
        person.anchor_stop = metro[1][0] if person.anchor else None
        return
    chosen: list[Stop | None] = []
    for lat, lng in ends:
        stop, d = stops.nearest(lat, lng, "bus")
        near = stop is not None and d <= BUS_WALK_M
        chosen.append(stop if near else grid_bus_stop(lat, lng, district, box))
    person.home_stop = chosen[0]
    person.anchor_stop = chosen[1] if person.anchor else None


def age_band_of(age: int) -> str:
    for band, (lo, hi) in zip(AGE_BANDS, AGE_BAND_YEARS, strict=True):
        if lo <= age <= hi:
            return band
    return AGE_BANDS[-1]
