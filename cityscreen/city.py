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
        return msgspec.json.decode(data, type=City)
    except msgspec.DecodeError as exc:
        raise CityScreenError(f"city file {where} is invalid: {exc} (format: docs/city-model.md)") from exc
