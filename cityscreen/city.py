"""The city model: a JSON data file describing a city's districts, transit, merchants and venues.

The generator simulates people in it and the map draws its base layer from it (no internet needed).
Format (all coordinates WGS84, polygons as rings of [lng, lat]) is documented in docs/city-model.md;
`load_city` validates a file and says what is wrong with it.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import msgspec

from cityscreen.errors import CityScreenError


class BBox(msgspec.Struct, frozen=True):
    min_lat: float
    max_lat: float
    min_lng: float
    max_lng: float

    def contains(self, lat: float, lng: float) -> bool:
        return self.min_lat <= lat <= self.max_lat and self.min_lng <= lng <= self.max_lng


class District(msgspec.Struct, frozen=True):
    id: str
    name: str
    population: int  # residents
    jobs: int  # workplaces (commute destinations)
    center: tuple[float, float]  # (lng, lat)
    polygon: list[tuple[float, float]]  # ring of (lng, lat)


class Station(msgspec.Struct, frozen=True):
    id: str
    name: str
    lat: float
    lng: float


class MetroLine(msgspec.Struct, frozen=True):
    id: str
    name: str
    color: str  # "#rrggbb"
    stations: list[Station]


class MerchantCluster(msgspec.Struct, frozen=True):
    id: str
    name: str
    lat: float
    lng: float
    radius_m: float
    weight: float  # relative share of the city's payments
    categories: dict[str, float]  # merchant category -> share within the cluster


class Venue(msgspec.Struct, frozen=True):
    id: str
    name: str
    kind: str  # "stadium" | "railway_station" | "airport" | ...
    lat: float
    lng: float
    capacity: int = 0


class City(msgspec.Struct, frozen=True):
    name: str
    utc_offset_h: float  # local time = UTC + offset (the daily cycle runs on local time)
    bbox: BBox
    outline: list[tuple[float, float]]
    districts: list[District]
    metro_lines: list[MetroLine]
    merchant_clusters: list[MerchantCluster]
    venues: list[Venue]
    # share of residents whose ID document is from each origin code (see cityscreen.demography)
    origin_mix: dict[str, float] = {}
    # optional (added for the generator): bus routes, in the same shape as metro lines
    bus_lines: list[MetroLine] = []
    # origin mix of visitors and tourists, and their share of the simulated population
    visitor_origin_mix: dict[str, float] = {}
    visitor_share: float = 0.0
    # share of the residents (the districts' populations) that a run simulates by default: 1.0 is the
    # whole census, less is one operator's subscribers (one telco's SIMs, one wallet's accounts)
    operator_share: float = 1.0


DEFAULT_CITY = "shenzhen.json"


def load_city(path: Path | None = None) -> City:
    """Load and validate a city file; None loads the bundled default (Shenzhen)."""
    try:
        if path is None:
            data = resources.files("cityscreen.data").joinpath(DEFAULT_CITY).read_bytes()
            where = f"bundled {DEFAULT_CITY}"
        else:
            data = Path(path).read_bytes()
            where = str(path)
    except FileNotFoundError as exc:
        raise CityScreenError(
            f"city file not found: {exc.filename}: pass an existing file (format: docs/city-model.md)"
        ) from exc
    try:
        city = msgspec.json.decode(data, type=City)
    except msgspec.DecodeError as exc:
        raise CityScreenError(f"city file {where} is invalid: {exc} (format: docs/city-model.md)") from exc
    problems = city_problems(city)
    if problems:
        raise CityScreenError(
            f"city file {where} is invalid: {'; '.join(problems)} (format: docs/city-model.md)"
        )
    return city


def city_problems(city: City) -> list[str]:
    """What is inconsistent in a decoded city (empty when it is usable by the generator)."""
    from cityscreen.demography import ORIGIN_REGIONS

    box = city.bbox
    problems: list[str] = []
    if not (box.min_lat < box.max_lat and box.min_lng < box.max_lng):
        problems.append("bbox min must be below max")
    if not city.districts or sum(d.population for d in city.districts) <= 0:
        problems.append("at least one district with a positive population is needed")
    for district in city.districts:
        if district.population < 0 or district.jobs < 0:
            problems.append(f"district {district.id}: population and jobs must not be negative")
        if len(district.polygon) < 3:
            problems.append(f"district {district.id}: polygon needs at least 3 points")
        points = [(lat, lng) for lng, lat in (district.center, *district.polygon)]
        if not all(box.contains(lat, lng) for lat, lng in points):
            problems.append(f"district {district.id}: centre or polygon outside the bbox")
    places = [
        *(
            ("station " + s.id, s.lat, s.lng)
            for line in city.metro_lines + city.bus_lines
            for s in line.stations
        ),
        *(("merchant cluster " + m.id, m.lat, m.lng) for m in city.merchant_clusters),
        *(("venue " + v.id, v.lat, v.lng) for v in city.venues),
    ]
    problems += [
        f"{name} at ({lat}, {lng}) is outside the bbox"
        for name, lat, lng in places
        if not box.contains(lat, lng)
    ]
    for line in city.metro_lines + city.bus_lines:
        if len(line.stations) < 2:
            problems.append(f"line {line.id}: needs at least 2 stations")
    if not city.merchant_clusters:
        problems.append("at least one merchant cluster is needed")
    for name, mix in (("origin_mix", city.origin_mix), ("visitor_origin_mix", city.visitor_origin_mix)):
        unknown = sorted(set(mix) - set(ORIGIN_REGIONS))
        if unknown:
            problems.append(f"{name} has unknown origin codes {unknown} (known: cityscreen.demography)")
        if any(share < 0 for share in mix.values()):
            problems.append(f"{name} shares must not be negative")
    if not 0 <= city.visitor_share < 1:
        problems.append("visitor_share must be in [0, 1)")
    if not 0 < city.operator_share <= 1:
        problems.append("operator_share must be in (0, 1]")
    return problems
