"""The city model file: the bundled Shenzhen loads and validates; broken files are refused with a reason."""

from __future__ import annotations

import json
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from cityscreen.city import load_city
from cityscreen.errors import CityScreenError


def test_bundled_shenzhen_is_complete() -> None:
    city = load_city()
    assert city.name == "Shenzhen" and city.utc_offset_h == 8
    assert (city.bbox.min_lng, city.bbox.max_lng, city.bbox.min_lat, city.bbox.max_lat) == (
        113.75,
        114.65,
        22.45,
        22.85,
    )
    assert len(city.districts) == 10 and sum(d.population for d in city.districts) > 15_000_000
    assert len(city.metro_lines) >= 5 and all(len(line.stations) >= 10 for line in city.metro_lines)
    assert {v.kind for v in city.venues} >= {"stadium", "railway_station", "airport"}
    assert sum(city.origin_mix.values()) == pytest.approx(1.0)
    assert city.origin_mix["GD"] < 0.5


@pytest.fixture
def city_dict() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(
        resources.files("cityscreen.data").joinpath("shenzhen.json").read_text()
    )
    return loaded


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c["venues"][0].update(lat=40.0), "outside the bbox"),
        (lambda c: c["origin_mix"].update(XX=0.1), "unknown origin codes"),
        (lambda c: c.update(districts=[]), "at least one district"),
        (lambda c: c["metro_lines"][0].update(stations=c["metro_lines"][0]["stations"][:1]), "at least 2"),
        (lambda c: c.pop("bbox"), "bbox"),
    ],
)
def test_broken_city_files_are_refused_with_the_reason(
    tmp_path: Path, city_dict: dict[str, Any], change: Callable[[dict[str, Any]], object], message: str
) -> None:
    change(city_dict)
    path = tmp_path / "city.json"
    path.write_text(json.dumps(city_dict))
    with pytest.raises(CityScreenError, match=message):
        load_city(path)


def test_missing_city_file_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(CityScreenError, match=r"docs/city-model\.md"):
        load_city(tmp_path / "nope.json")
