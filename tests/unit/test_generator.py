"""The synthetic city: determinism, the daily cycle, commutes with tap pairs, scenarios, pacing, fixtures."""

from __future__ import annotations

import gzip
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from cityscreen.city import load_city
from cityscreen.demography import ORIGIN_REGIONS
from cityscreen.demography import PROVINCE_CODES as ORIGIN_CODES
from cityscreen.errors import CityScreenError
from cityscreen.events import RawEvent, RawPayment, RawSim, RawTransit
from services.generator.cli import parse_start
from services.generator.columnar.encoding import ident
from services.generator.columnar.engine import Engine, generate_raw_events
from services.generator.columnar.population import ROLES, TOURIST, build_population
from services.generator.columnar.world import HOUR_MS
from services.generator.fixtures import (
    DAY_MS,
    read_events,
    shift_days_for,
    time_range,
    write_events,
)
from services.generator.run import Pace, RunReport
from services.generator.scenarios import parse_scenarios

CITY = load_city()
TUESDAY = int(datetime.fromisoformat("2026-11-17T00:00:00+08:00").timestamp() * 1000)
SATURDAY = TUESDAY + 4 * DAY_MS
FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "shenzhen-10min.jsonl.gz"


def hourly(events: list[RawEvent], start_ms: int) -> dict[str, Counter[int]]:
    counts: dict[str, Counter[int]] = defaultdict(Counter)
    for e in events:
        counts[type(e).__name__][(e.ts_ms - start_ms) // HOUR_MS] += 1
    return counts


@pytest.fixture(scope="module")
def weekday() -> list[RawEvent]:
    return list(generate_raw_events(CITY, 3000, TUESDAY, 86_400, seed=7))


def test_same_seed_same_events_other_seed_other_events() -> None:
    start = TUESDAY + 8 * HOUR_MS
    a = list(generate_raw_events(CITY, 800, start, 1800, seed=3))
    b = list(generate_raw_events(CITY, 800, start, 1800, seed=3))
    c = list(generate_raw_events(CITY, 800, start, 1800, seed=4))
    assert a == b and len(a) > 100
    assert a != c


def test_a_slice_equals_the_same_span_of_a_longer_run() -> None:
    long = list(generate_raw_events(CITY, 500, TUESDAY + 7 * HOUR_MS, 3 * 3600, seed=5))
    lo, hi = TUESDAY + 8 * HOUR_MS, TUESDAY + 9 * HOUR_MS
    part = list(generate_raw_events(CITY, 500, lo, 3600, seed=5))
    assert part == [e for e in long if lo <= e.ts_ms < hi]


def test_events_are_ordered_unique_and_inside_the_city(weekday: list[RawEvent]) -> None:
    assert [e.ts_ms for e in weekday] == sorted(e.ts_ms for e in weekday)
    assert len({e.event_id for e in weekday}) == len(weekday)
    assert all(CITY.bbox.contains(e.lat, e.lng) for e in weekday)
    assert {type(e) for e in weekday} == {RawSim, RawPayment, RawTransit}
    assert all(e.origin in ORIGIN_REGIONS for e in weekday if isinstance(e, RawSim | RawPayment))


def test_daily_cycle_has_commute_peaks_lunch_and_quiet_night(weekday: list[RawEvent]) -> None:
    counts = hourly(weekday, TUESDAY)
    taps, pays, sims = counts["RawTransit"], counts["RawPayment"], counts["RawSim"]
    night = sum(taps[h] for h in range(2, 5))  # hours 0-1 hold the last rides home of the evening before
    midday = max(taps[h] for h in range(11, 16))
    morning, evening = max(taps[h] for h in (7, 8, 9)), max(taps[h] for h in (17, 18, 19, 20))
    # a few long rides home from an evening outing across the city end after 02:00
    assert night <= morning / 100 and taps[0] < midday and morning > 3 * midday and evening > 3 * midday
    assert pays[12] > 2 * max(pays[10], pays[14]) and sum(pays[h] for h in range(2, 5)) < pays[12] / 10
    assert sims[8] > 1.3 * sims[3]  # moving phones hand over between cells; at night they only idle


def test_weekend_has_no_commute_peak(weekday: list[RawEvent]) -> None:
    saturday = list(generate_raw_events(CITY, 3000, SATURDAY, 86_400, seed=7))
    weekday_taps, weekend_taps = (
        hourly(weekday, TUESDAY)["RawTransit"],
        hourly(saturday, SATURDAY)["RawTransit"],
    )
    assert weekend_taps[8] < weekday_taps[8] / 3
    assert sum(weekend_taps.values()) > 0


def test_commutes_pair_tap_in_with_tap_out_after_a_plausible_ride(weekday: list[RawEvent]) -> None:
    open_taps: dict[str, RawTransit] = {}
    rides_min = []
    for e in weekday:
        if not isinstance(e, RawTransit):
            continue
        if e.tap == "in":
            assert e.card not in open_taps
            open_taps[e.card] = e
        elif e.card in open_taps:
            tap_in = open_taps.pop(e.card)
            assert tap_in.mode == e.mode and tap_in.station_id != e.station_id
            rides_min.append((e.ts_ms - tap_in.ts_ms) / 60_000)
        else:  # a ride begun the evening before the simulated span
            assert e.ts_ms < TUESDAY + 3 * HOUR_MS
    # rides still open at the end began in the evening and end after midnight
    assert all(t.ts_ms > TUESDAY + 18 * HOUR_MS for t in open_taps.values())
    assert len(rides_min) > 500 and min(rides_min) >= 2
    median = sorted(rides_min)[len(rides_min) // 2]
    assert 10 <= median <= 90


def test_population_is_seeded_and_identifiers_unique() -> None:
    stops = Engine(CITY, 1, seed=1).world.stops
    people = build_population(CITY, 2000, 1, stops)
    again = build_population(CITY, 2000, 1, stops)
    for column in ("home_lat", "home_lng", "origin", "role", "anchor_lat"):
        assert np.array_equal(getattr(people, column), getattr(again, column), equal_nan=True)
    index = np.arange(2000)
    for prefixes, width, offset in (
        (("00", "01", "11"), 10, people.id_offsets[0]),
        (("138", "159", "186", "177"), 8, people.id_offsets[1]),
        (("",), 12, people.id_offsets[2]),
        (("",), 9, people.id_offsets[3]),
    ):
        assert len({row.tobytes() for row in ident(index, prefixes, width, offset)}) == 2000
    origins = Counter(int(o) for o in people.origin)
    assert 0.25 < origins[ORIGIN_CODES.index("GD")] / 2000 < 0.55  # most residents come from other provinces
    assert {ROLES[r] for r in people.role} >= {"worker", "pupil", "student", "retiree", "visitor", "tourist"}


def test_a_person_does_not_depend_on_the_population_size() -> None:
    stops = Engine(CITY, 1, seed=1).world.stops
    small, large = build_population(CITY, 2000, 5, stops), build_population(CITY, 50_000, 5, stops)
    residents = 1900  # below both runs' visitor rows
    assert np.array_equal(small.home_lat[:residents], large.home_lat[:residents])
    assert np.array_equal(small.role[:residents], large.role[:residents])


def test_stadium_scenario_builds_a_crowd_and_a_spending_spike() -> None:
    venue = next(v for v in CITY.venues if v.kind == "stadium")
    start = TUESDAY + 17 * HOUR_MS

    def near_venue(events: list[RawEvent]) -> Counter[str]:
        return Counter(
            type(e).__name__
            for e in events
            if abs(e.lat - venue.lat) < 0.01 and abs(e.lng - venue.lng) < 0.01
        )

    base = near_venue(list(generate_raw_events(CITY, 2000, start, 4 * 3600, seed=9)))
    scenarios = parse_scenarios(["stadium:start=19:30,share=0.1"])
    event = near_venue(list(generate_raw_events(CITY, 2000, start, 4 * 3600, seed=9, scenarios=scenarios)))
    for kind in ("RawSim", "RawPayment", "RawTransit"):
        assert event[kind] > 3 * base[kind] + 20


def test_outage_moves_line_riders_to_shuttle_buses() -> None:
    start = TUESDAY + 7 * HOUR_MS
    scenarios = parse_scenarios(["outage:line=L1,start=07:00,end=10:00"])
    events = [
        e
        for e in generate_raw_events(CITY, 3000, start, 3 * 3600, 11, scenarios)
        if isinstance(e, RawTransit)
    ]
    normal = [e for e in generate_raw_events(CITY, 3000, start, 3 * 3600, 11) if isinstance(e, RawTransit)]
    assert not [e for e in events if e.line == "L1" and e.tap == "in"]
    assert sum(e.line == "L1" for e in normal) > 50
    assert sum(e.line == "shuttle-L1" for e in events) > 50


def test_tourist_influx_adds_spending_tourists() -> None:
    base = Engine(CITY, 1000, 2)
    busy = Engine(CITY, 1000, 2, parse_scenarios(["tourists:share=0.5"]))
    assert busy.world.n == 1500 and int((busy.world.pop.role == TOURIST).sum()) >= 500
    span = (TUESDAY + 9 * HOUR_MS, 8 * 3600)
    pays = [sum(isinstance(e, RawPayment) for e in s.events(*span)) for s in (base, busy)]
    assert pays[1] > pays[0] * 1.3


def test_scenario_specs_are_validated() -> None:
    assert parse_scenarios(["stadium:share=0.2"]).stadium.share == 0.2  # type: ignore[union-attr]
    for bad in ("volcano", "stadium:crowd=9", "outage:start=25:00"):
        with pytest.raises(CityScreenError):
            parse_scenarios([bad])


def test_rate_schedule_ramps_linearly_then_holds() -> None:
    pace = Pace(rate_eps=1000, ramp_s=10)
    assert pace.due_s(0) == 0
    assert pace.due_s(5000) == pytest.approx(10.0)  # the ramp delivers rate * ramp_s / 2 events
    assert pace.due_s(6000) == pytest.approx(11.0)
    assert Pace(rate_eps=500).due_s(1000) == pytest.approx(2.0)


def test_report_says_when_it_could_not_keep_up() -> None:
    slow = RunReport(events=5000, wall_s=10.0, target_eps=1000)
    assert not slow.kept_up and "COULD NOT KEEP UP" in slow.summary()
    assert RunReport(events=10_000, wall_s=10.0, target_eps=1000).kept_up
    behind = RunReport(events=10, wall_s=1.0, max_behind_s=30.0)
    assert not behind.kept_up and "behind" in behind.summary()


def test_fixture_roundtrip_is_byte_stable(tmp_path: Path) -> None:
    events = list(generate_raw_events(CITY, 300, TUESDAY + 8 * HOUR_MS, 600, seed=1))
    a, b = tmp_path / "a.jsonl.gz", tmp_path / "b.jsonl.gz"
    assert write_events(a, events) == write_events(b, events) == len(events)
    assert a.read_bytes() == b.read_bytes()
    assert list(read_events(a)) == events
    assert time_range(a) == (events[0].ts_ms, events[-1].ts_ms)


def test_replay_shift_lands_in_the_last_day_and_keeps_time_of_day() -> None:
    last = TUESDAY + 8 * HOUR_MS + 123
    for now in (last + 5, last + DAY_MS - 1, last + DAY_MS, last + 400 * DAY_MS + 77):
        days = shift_days_for(last, now)
        assert now - DAY_MS < last + days * DAY_MS <= now
    assert shift_days_for(last, last) == 0


def test_shipped_fixture_is_a_weekday_morning_peak() -> None:
    events = list(read_events(FIXTURE))
    kinds = Counter(type(e).__name__ for e in events)
    assert 20_000 <= len(events) <= 60_000 and min(kinds.values()) > 500
    first, last = events[0].ts_ms, events[-1].ts_ms
    assert 590_000 <= last - first < 600_000
    local = datetime.fromtimestamp(first / 1000, tz=datetime.fromisoformat("2026-01-01T00:00+08:00").tzinfo)
    assert local.weekday() < 5 and local.hour == 8
    with gzip.open(FIXTURE) as f:
        assert f.readline().startswith(b'{"kind":')


def test_parse_start_accepts_now_today_and_iso() -> None:
    assert parse_start("2026-11-17T08:00:00+08:00", CITY) == TUESDAY + 8 * HOUR_MS
    assert parse_start("2026-11-17T08:00:00", CITY) == TUESDAY + 8 * HOUR_MS  # naive = city local time
    assert (parse_start("today", CITY) + 8 * HOUR_MS) % DAY_MS == 0
    with pytest.raises(CityScreenError):
        parse_start("yesterday-ish", CITY)
