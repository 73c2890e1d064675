"""The columnar engine's own contracts: byte-exact wire encoding, unique event ids, one idle update
per person per period, slicing that does not change the events, and the census population."""

from __future__ import annotations

from datetime import datetime

import msgspec
import numpy as np
import pytest

from cityscreen.city import city_problems, load_city
from cityscreen.events import RawEvent, decode_raw_many, encode
from services.generator.columnar.encoding import decimal
from services.generator.columnar.engine import Engine, census
from services.generator.columnar.world import HOUR_MS, SIM_PERIOD_MS
from services.generator.scenarios import parse_scenarios

CITY = load_city()
TUESDAY_8H = int(datetime.fromisoformat("2026-11-17T08:00:00+08:00").timestamp() * 1000)


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine(CITY, 4000, 3, parse_scenarios(["outage:line=L1,start=07:30,end=10:00"]))


def test_records_are_what_msgspec_writes_for_the_same_events(engine: Engine) -> None:
    for piece in engine.slices(TUESDAY_8H, 1800):
        for kind, cols in piece.cols.items():
            if not cols:
                continue
            lines = engine.encoder.lines(kind, cols).splitlines()
            events = [msgspec.json.decode(line, type=RawEvent) for line in lines]
            assert [encode(e) for e in events] == lines
            assert [(e.ts_ms, e.lat, e.lng) for e in events] == list(
                zip(cols["ts_ms"].tolist(), cols["lat"].tolist(), cols["lng"].tolist(), strict=True)
            )
            for record in engine.encoder.arrays(kind, cols, 7):
                assert len(decode_raw_many(record)) <= 7


@pytest.mark.parametrize("value", [114.0, 22.602, 22.6, -33.45678, 0.01, 1234.56, 7.1, 380.0])
def test_decimals_are_written_as_repr_writes_them(value: float) -> None:
    places = 2 if value in (0.01, 1234.56, 380.0, 7.1) else 5
    row = decimal(np.array([value]), places, 8)[0]
    assert row[row != 0].tobytes().decode() == repr(value)


def test_event_ids_are_unique_over_a_busy_hour(engine: Engine) -> None:
    ids = [e.event_id for e in engine.events(TUESDAY_8H, 3600)]
    assert len(ids) > 5000 and len(set(ids)) == len(ids)
    assert all(len(i) == 24 and int(i, 16) >= 0 for i in ids[:100])


def test_every_person_is_due_once_per_period(engine: Engine) -> None:
    person, ts = engine.world.idle_persons(TUESDAY_8H + 123, TUESDAY_8H + 123 + SIM_PERIOD_MS)
    assert sorted(person.tolist()) == list(range(engine.world.n))
    assert ((ts >= TUESDAY_8H + 123) & (ts < TUESDAY_8H + 123 + SIM_PERIOD_MS)).all()
    twice, _ = engine.world.idle_persons(TUESDAY_8H, TUESDAY_8H + 2 * SIM_PERIOD_MS + 7)
    assert np.bincount(twice, minlength=engine.world.n).min() >= 2


def test_the_slice_length_does_not_change_the_events() -> None:
    a = Engine(CITY, 600, 8)
    b = Engine(CITY, 600, 8)
    start = TUESDAY_8H - 9 * HOUR_MS  # 23:00 the evening before: across local midnight
    fine = [e for piece in a.slices(start, 3 * 3600, 60_000) for e in a.raw_events(piece)]
    coarse = list(b.events(start, 3 * 3600))
    assert fine == coarse and len(fine) > 1000


def test_the_census_is_the_districts_population_times_the_operator_share() -> None:
    total = sum(d.population for d in CITY.districts)
    assert census(CITY) == total > 17_000_000
    one_operator = msgspec.structs.replace(CITY, operator_share=0.25)
    assert census(one_operator) == round(total * 0.25)
    for bad in (0.0, 1.5, -0.1):
        assert any(
            "operator_share" in p for p in city_problems(msgspec.structs.replace(CITY, operator_share=bad))
        )
    assert not city_problems(one_operator)
