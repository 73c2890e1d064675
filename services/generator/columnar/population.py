"""The synthetic population as columns: one numpy array per attribute, one row per person.

A person's attributes are counter-based draws of (seed, person index), so the same index gets the same
person whatever the population size or block split; only the visitor rows (the last `visitor_share`
of the residents) and the scenario's extra tourists (rows after the residents) depend on the size.
Built in blocks, so the temporaries stay small while 17.5 million rows are filled in.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from cityscreen.city import City, District
from cityscreen.demography import PROVINCE_CODES
from services.generator.columnar.grid import F64, I64
from services.generator.columnar.places import Stops, near
from services.generator.columnar.rand import NO_DAY, Draws

ROLES = ("worker", "student", "pupil", "retiree", "homemaker", "visitor", "tourist")
WORKER, STUDENT, PUPIL, RETIREE, HOMEMAKER, VISITOR, TOURIST = range(7)
ORIGINS = PROVINCE_CODES  # origin codes on the wire, indexed by the `origin` column
# Shenzhen is young: the 2020 census puts about 80% of residents at 15-59.
AGE_BAND_SHARES = (0.17, 0.12, 0.27, 0.20, 0.12, 0.07, 0.05)
AGE_BAND_YEARS = ((0, 17), (18, 24), (25, 34), (35, 44), (45, 54), (55, 64), (65, 90))
VISITOR_AGE_SHARES = (0.03, 0.17, 0.32, 0.24, 0.14, 0.07, 0.03)
BLOCK = 1 << 20  # persons built at a time
MAX_PERSONS = 10**8  # the 8-digit MSISDN space: beyond it identifiers would collide
(S_BAND, S_AGE, S_ROLE, S_DISTRICT, S_ORIGIN, S_GENDER, S_REG, S_TRANSIT, S_CLUSTER, S_NEAR, S_WORK,
 S_HOME_TRY, S_ATTEND) = range(100, 113)  # fmt: skip


@dataclass
class Population:
    """Columns per person. Positions are float32 (~1 m): every emitted position is snapped to a grid
    node, a stop or a merchant, so the storage precision never reaches the wire."""

    residents: int
    role: npt.NDArray[np.uint8]
    gender: npt.NDArray[np.uint8]  # 0 F, 1 M
    age: npt.NDArray[np.uint8]
    reg_gender: npt.NDArray[np.uint8]  # as registered at SIM purchase: a pupil's SIM is a parent's
    reg_age: npt.NDArray[np.uint8]
    origin: npt.NDArray[np.uint8]  # index into ORIGINS
    home_lat: npt.NDArray[np.float32]
    home_lng: npt.NDArray[np.float32]
    anchor_lat: npt.NDArray[np.float32]  # work or school; NaN for persons without one
    anchor_lng: npt.NDArray[np.float32]
    home_stop: npt.NDArray[np.int32]  # stop codes (places.Stops)
    anchor_stop: npt.NDArray[np.int32]
    uses_transit: npt.NDArray[np.bool_]
    id_offsets: tuple[int, int, int, int]  # IMSI, MSISDN, account, card

    @property
    def n(self) -> int:
        return len(self.role)

    def nbytes(self) -> int:
        return sum(v.nbytes for v in vars(self).values() if isinstance(v, np.ndarray))


def build_population(
    city: City, persons: int, seed: int, stops: Stops, *, extra_tourists: int = 0
) -> Population:
    """`persons` residents and visitors of `city`, plus `extra_tourists` (the tourist-influx scenario)."""
    n = persons + extra_tourists
    if n > MAX_PERSONS:
        raise ValueError(f"{n} persons exceed the identifier space ({MAX_PERSONS:,})")
    offsets = np.random.default_rng([seed, 1]).integers(0, 10**9, 4)
    u8 = {
        k: np.zeros(n, dtype=np.uint8) for k in ("role", "gender", "age", "reg_gender", "reg_age", "origin")
    }
    f32 = {k: np.zeros(n, dtype=np.float32) for k in ("home_lat", "home_lng", "anchor_lat", "anchor_lng")}
    pop = Population(
        residents=persons, **u8, **f32,  # type: ignore[arg-type]
        home_stop=np.zeros(n, dtype=np.int32), anchor_stop=np.zeros(n, dtype=np.int32),
        uses_transit=np.zeros(n, dtype=bool),
        id_offsets=(int(offsets[0]), int(offsets[1]), int(offsets[2]), int(offsets[3])),
    )  # fmt: skip
    draws = Draws(seed, NO_DAY)
    for lo in range(0, n, BLOCK):
        _fill(pop, city, persons, draws, stops, np.arange(lo, min(n, lo + BLOCK), dtype=np.int64))
    return pop


def _fill(pop: Population, city: City, persons: int, draws: Draws, stops: Stops, idx: I64) -> None:
    visitors = round(persons * city.visitor_share)
    is_extra = idx >= persons
    is_visitor = (idx >= persons - visitors) & ~is_extra
    band = np.where(
        is_visitor | is_extra,
        draws.choice(idx, S_BAND, VISITOR_AGE_SHARES),
        draws.choice(idx, S_BAND, AGE_BAND_SHARES),
    )
    years = np.array(AGE_BAND_YEARS)
    age = years[band, 0] + (draws.uniform(idx, S_AGE) * (years[band, 1] - years[band, 0] + 1)).astype(int)
    role = _roles(band, is_visitor, is_extra, draws.uniform(idx, S_ROLE))
    gender = (draws.uniform(idx, S_GENDER) >= 0.48).astype(np.uint8)
    pupil = role == PUPIL
    reg_gender = np.where(pupil, draws.uniform(idx, S_REG) >= 0.5, gender)
    reg_age = np.where(pupil, age + draws.integers(idx, S_REG + 1, 24, 35), age)
    h_lat, h_lng, district = _homes(city, idx, role, draws)
    a_lat, a_lng = _anchors(city, idx, role, h_lat, h_lng, district, draws)
    sl = slice(int(idx[0]), int(idx[-1]) + 1)
    pop.role[sl], pop.gender[sl], pop.age[sl] = role, gender, age
    pop.reg_gender[sl], pop.reg_age[sl] = reg_gender, reg_age
    pop.origin[sl] = _origins(city, idx, role, draws)
    pop.home_lat[sl], pop.home_lng[sl], pop.anchor_lat[sl], pop.anchor_lng[sl] = h_lat, h_lng, a_lat, a_lng
    p_transit = np.where(np.isin(role, (VISITOR, TOURIST, STUDENT)), 0.9, 0.62)
    pop.uses_transit[sl] = draws.uniform(idx, S_TRANSIT) < p_transit
    pop.home_stop[sl], pop.anchor_stop[sl] = _commute_stops(stops, h_lat, h_lng, a_lat, a_lng)


def _roles(band: I64, is_visitor: npt.NDArray[np.bool_], is_extra: npt.NDArray[np.bool_], u: F64) -> I64:
    role = np.select(
        [band == 0, band == 1, (band >= 2) & (band <= 4), band == 5],
        [
            np.full(len(u), PUPIL),
            np.where(u < 0.5, STUDENT, np.where(u < 0.95, WORKER, HOMEMAKER)),
            np.where(u < 0.88, WORKER, HOMEMAKER),
            np.where(u < 0.45, WORKER, RETIREE),
        ],
        RETIREE,
    )
    role = np.where(is_visitor, np.where(u < 0.45, VISITOR, TOURIST), role)
    return np.where(is_extra, TOURIST, role)


def _origins(city: City, idx: I64, role: I64, draws: Draws) -> I64:
    def codes(mix: dict[str, float]) -> tuple[I64, list[float]]:
        keys = sorted(mix)
        return np.array([ORIGINS.index(k) for k in keys]), [mix[k] for k in keys]

    res_codes, res_w = codes(city.origin_mix or {"GD": 1.0})
    vis_codes, vis_w = codes(city.visitor_origin_mix or city.origin_mix or {"GD": 1.0})
    u_res = res_codes[draws.choice(idx, S_ORIGIN, res_w)]
    u_vis = vis_codes[draws.choice(idx, S_ORIGIN, vis_w)]
    return np.where(np.isin(role, (VISITOR, TOURIST)), u_vis, u_res)


def _homes(city: City, idx: I64, role: I64, draws: Draws) -> tuple[F64, F64, I64]:
    """Residents live inside their district's polygon; visitors and tourists in a hotel near a cluster."""
    district = draws.choice(idx, S_DISTRICT, [d.population for d in city.districts])
    lat, lng = points_in_districts(city, idx, district, draws, S_HOME_TRY)
    clusters = city.merchant_clusters
    c = draws.integers(idx, S_CLUSTER, 0, len(clusters) - 1)
    c_lat = np.array([m.lat for m in clusters])[c]
    c_lng = np.array([m.lng for m in clusters])[c]
    h_lat, h_lng = near(c_lat, c_lng, 600.0, draws.normal(idx, S_NEAR), draws.normal(idx, S_NEAR + 7), city)
    guest = np.isin(role, (VISITOR, TOURIST))
    return np.where(guest, h_lat, lat), np.where(guest, h_lng, lng), district


def points_in_districts(city: City, idx: I64, district: I64, draws: Draws, stream: int) -> tuple[F64, F64]:
    """A uniform point in each person's district polygon (rejection sampling, 100 tries, then the centre)."""
    lat, lng = np.zeros(len(idx)), np.zeros(len(idx))
    for d, dist in enumerate(city.districts):
        rows = np.flatnonzero(district == d)
        lat[rows], lng[rows] = dist.center[1], dist.center[0]
        poly = np.array(dist.polygon)
        for attempt in range(100):
            if not len(rows):
                break
            t_lat = poly[:, 1].min() + draws.uniform(idx[rows], stream + 2 * attempt) * np.ptp(poly[:, 1])
            t_lng = poly[:, 0].min() + draws.uniform(idx[rows], stream + 2 * attempt + 1) * np.ptp(poly[:, 0])
            inside = in_polygon(t_lat, t_lng, dist)
            lat[rows[inside]], lng[rows[inside]] = t_lat[inside], t_lng[inside]
            rows = rows[~inside]
    return lat, lng


def in_polygon(lat: F64, lng: F64, district: District) -> npt.NDArray[np.bool_]:
    """Even-odd rule, one pass per polygon edge (not per point)."""
    inside = np.zeros(len(lat), dtype=bool)
    poly = district.polygon
    for i in range(len(poly)):
        (x1, y1), (x2, y2) = poly[i], poly[(i + 1) % len(poly)]
        if y1 == y2:
            continue
        crosses = ((y1 > lat) != (y2 > lat)) & (lng < (x2 - x1) * (lat - y1) / (y2 - y1) + x1)
        inside ^= crosses
    return inside


def _anchors(
    city: City, idx: I64, role: I64, h_lat: F64, h_lng: F64, home_d: I64, draws: Draws
) -> tuple[F64, F64]:
    """Work or school: pupils near home, students on the tech campus, workers in a district drawn by
    jobs (40% their own) at one of its clusters or anywhere in it, visitors in the busiest cluster."""
    clusters = city.merchant_clusters
    dy, dx = draws.normal(idx, S_NEAR + 20), draws.normal(idx, S_NEAR + 27)
    campus = next((m for m in clusters if "tech" in m.id), clusters[0])
    cbd = max(clusters, key=lambda m: m.weight)
    work_d = np.where(
        draws.uniform(idx, S_WORK) < 0.4, home_d,
        draws.choice(idx, S_WORK + 1, [max(d.jobs, 1) for d in city.districts]),
    )  # fmt: skip
    w_lat, w_lng = points_in_districts(city, idx, work_d, draws, S_WORK + 300)
    for d, dist in enumerate(city.districts):
        inside = [
            (c, m)
            for c, m in enumerate(clusters)
            if in_polygon(np.array([m.lat]), np.array([m.lng]), dist)[0]
        ]
        rows = np.flatnonzero((work_d == d) & (draws.uniform(idx, S_WORK + 2) < 0.5))
        if not inside or not len(rows):
            continue
        pick = draws.choice(idx[rows], S_WORK + 3, [m.weight for _, m in inside])
        m_lat = np.array([m.lat for _, m in inside])[pick]
        m_lng = np.array([m.lng for _, m in inside])[pick]
        radius = np.array([m.radius_m for _, m in inside])[pick]
        w_lat[rows], w_lng[rows] = near(m_lat, m_lng, radius, dy[rows], dx[rows], city)
    ones = np.ones(len(idx))
    choices = [
        (role == PUPIL, near(h_lat, h_lng, 700.0, dy, dx, city)),
        (role == STUDENT, near(ones * campus.lat, ones * campus.lng, 1500.0, dy, dx, city)),
        (role == WORKER, (w_lat, w_lng)),
        (role == VISITOR, near(ones * cbd.lat, ones * cbd.lng, cbd.radius_m, dy, dx, city)),
    ]
    conds = [c for c, _ in choices]
    lat = np.select(conds, [p[0] for _, p in choices], np.nan)
    return lat, np.select(conds, [p[1] for _, p in choices], np.nan)


def _commute_stops(stops: Stops, h_lat: F64, h_lng: F64, a_lat: F64, a_lng: F64) -> tuple[I64, I64]:
    """Metro when both ends are near a station, else bus (a named stop near, or the local grid)."""
    has_anchor = ~np.isnan(a_lat)
    a_lat, a_lng = np.where(has_anchor, a_lat, h_lat), np.where(has_anchor, a_lng, h_lng)
    _, d_home = stops.metro.nearest(h_lat, h_lng)
    _, d_anchor = stops.metro.nearest(a_lat, a_lng)
    bus_only = ~((d_home <= 1_300.0) & (d_anchor <= 1_300.0))
    home = np.where(bus_only, stops.stop_for(h_lat, h_lng, True), stops.stop_for(h_lat, h_lng))
    anchor = np.where(bus_only, stops.stop_for(a_lat, a_lng, True), stops.stop_for(a_lat, a_lng))
    return home, np.where(has_anchor, anchor, home)  # no anchor: never ridden to
