"""The generator never emits a position outside the city it simulates (the ingest edge would
dead-letter it as out_of_city): towers, local bus stops, merchants and hotels near the edge included."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pytest

from cityscreen.city import BBox, load_city
from cityscreen.ingest import Validator, config_from_settings
from cityscreen.settings import Settings
from services.generator.columnar.engine import Engine
from services.generator.columnar.grid import BUS_GRID_DEG, SHOP_GRID_DEG, TOWER_DEG, snap
from services.generator.columnar.places import HOME
from services.generator.columnar.world import DAY_MS
from services.generator.population import clamp_into, grid_point
from services.generator.scenarios import parse_scenarios

CITY = load_city()
MONDAY = int(datetime.fromisoformat("2026-11-16T00:00:00+08:00").timestamp() * 1000)
BOX = BBox(min_lat=22.45, max_lat=22.85, min_lng=113.75, max_lng=114.65)


@pytest.mark.parametrize(
    ("seed", "day", "persons", "scenarios"),
    [
        (1, 0, 1000, ""),
        (2, 2, 800, "stadium:start=19:30,share=0.2"),
        (3, 5, 800, "tourists:share=0.5"),  # a Saturday: outings and leisure trips
        (11, 6, 800, "outage:line=L1,start=06:00,end=12:00"),
        (42, 1, 1000, ""),
    ],
)
def test_every_event_of_a_day_lies_inside_the_city(seed: int, day: int, persons: int, scenarios: str) -> None:
    sim = Engine(CITY, persons, seed, parse_scenarios(scenarios.split() if scenarios else []))
    box = CITY.bbox
    outside = [
        (type(e).__name__, e.lat, e.lng)
        for e in sim.events(MONDAY + day * DAY_MS, 86_400)
        if not box.contains(e.lat, e.lng)
    ]
    assert outside == []


def test_the_fixture_population_stays_inside_the_city() -> None:
    """The shipped fixture's run (40,000 persons, seed 42, a Tuesday 08:00-08:10): before towers and
    local stops were snapped inside, four of its events lay past the bbox's edge."""
    tuesday_8h = int(datetime.fromisoformat("2026-11-17T08:00:00+08:00").timestamp() * 1000)
    events = Engine(CITY, 40_000, seed=42).events(tuesday_8h, 600)
    assert [(e.lat, e.lng) for e in events if not CITY.bbox.contains(e.lat, e.lng)] == []


def test_every_point_of_the_box_snaps_to_a_node_inside_it() -> None:
    """A sweep over the whole box, edges and corners included, at each grid the generator uses; the
    vectorised snap agrees with the scalar grid_point node for node."""
    box = CITY.bbox
    steps = 97
    frac = np.linspace(0.0, 1.0, steps + 1)
    lat = np.repeat(box.min_lat + (box.max_lat - box.min_lat) * frac, steps + 1)
    lng = np.tile(box.min_lng + (box.max_lng - box.min_lng) * frac, steps + 1)
    for step_lat, step_lng in ((TOWER_DEG, TOWER_DEG), BUS_GRID_DEG, (SHOP_GRID_DEG, SHOP_GRID_DEG)):
        iy, ix, s_lat, s_lng = snap(lat, lng, step_lat, step_lng, box)
        assert ((s_lat >= box.min_lat) & (s_lat <= box.max_lat)).all()
        assert ((s_lng >= box.min_lng) & (s_lng <= box.max_lng)).all()
        for i in range(0, len(lat), 37):
            assert grid_point(float(lat[i]), float(lng[i]), step_lat, step_lng, box) == (
                iy[i],
                ix[i],
                s_lat[i],
                s_lng[i],
            )


def test_the_homes_anchors_and_stops_of_many_persons_lie_inside_the_city() -> None:
    world = Engine(CITY, 20_000, seed=9).world
    pop, box = world.pop, CITY.bbox
    has_anchor = ~np.isnan(pop.anchor_lat)
    person = np.arange(pop.n)
    for place in (np.full(pop.n, HOME), np.where(has_anchor, -2, HOME)):
        lat, lng = world.position(person, place)
        assert all(box.contains(float(a), float(b)) for a, b in zip(lat, lng, strict=True))
    for stop in (pop.home_stop, pop.anchor_stop):
        lat, lng = world.stops.position(stop.astype(np.int64))
        assert all(box.contains(float(a), float(b)) for a, b in zip(lat, lng, strict=True))


@pytest.mark.parametrize(
    ("lat", "lng"),
    [(22.8535, 113.856), (22.4471, 113.748), (22.85, 114.65), (22.45, 113.75), (21.0, 116.0), (22.6, 114.0)],
)
def test_a_tower_is_the_nearest_grid_node_inside_the_box(lat: float, lng: float) -> None:
    _, _, t_lat, t_lng = snap(np.array([lat]), np.array([lng]), TOWER_DEG, TOWER_DEG, BOX)
    assert BOX.contains(float(t_lat[0]), float(t_lng[0]))
    inside_lat, inside_lng = clamp_into(BOX, lat, lng)
    assert abs(t_lat[0] - inside_lat) <= 0.006 + 1e-9 and abs(t_lng[0] - inside_lng) <= 0.006 + 1e-9


def test_a_point_well_inside_snaps_as_before() -> None:
    assert grid_point(22.6, 114.0, 0.006, 0.006, BOX) == (3767, 19000, 22.602, 114.0)
    iy, ix, lat, lng = snap(np.array([22.6]), np.array([114.0]), 0.006, 0.006, BOX)
    assert (iy[0], ix[0], lat[0], lng[0]) == (3767, 19000, 22.602, 114.0)


def test_the_ingest_edge_accepts_a_generated_day_near_the_edge() -> None:
    """The same rule the edge applies: nothing of a generated hour is dead-lettered as out_of_city."""
    validator = Validator(config_from_settings(Settings(), CITY.bbox))
    events = list(Engine(CITY, 1500, seed=4).events(MONDAY + 8 * 3_600_000, 3600))
    assert events and all(validator.problem(e, events[0].ts_ms) is None for e in events)
