"""Closed vocabularies: the only categories, modes, lines, stations and merchants the ingest edge accepts.

Every accepted string may become a statistic key or a label downstream, so none is open. Fixed sets
come from `cityscreen.demography`; names come from the city model (`cityscreen/data/<city>.json`). Ids
the generator makes up where the model has no named place are accepted by rule, not by listing, so a
new district or cluster needs no change here:

- category: `MERCHANT_CATEGORIES`; mode: `TRANSIT_MODES` (the schema checks it too).
- line: a metro line (mode metro) or bus line (mode bus) of the model; `bus-<district id>` or
  `bus-local`, a grid bus route; `shuttle-<metro line>`, a replacement bus during an outage.
- station_id: a station of any line of the model; `BUS-<iy>-<ix>`, a grid bus stop; `<station>-shuttle`.
- merchant_id: `<merchant cluster or venue id>-<n>`; `LOC-<iy>-<ix>-<category prefix>`, a local merchant.
- tower_id, event_id (towers are not in the model): letters, digits and `._:-`, at most `MAX_ID_CHARS`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cityscreen.city import City
from cityscreen.demography import MERCHANT_CATEGORIES, TRANSIT_MODES

MAX_ID_CHARS = 64  # event ids (a UUID is 36) and tower ids
MAX_NAME_CHARS = 64  # lines, stations, merchants: longer is refused before any rule runs
ID_PATTERN = re.compile(rf"[A-Za-z0-9._:\-]{{1,{MAX_ID_CHARS}}}")
_GRID_STOP = re.compile(r"BUS-\d{1,6}-\d{1,6}")
_NUMBERED = re.compile(r"(.+)-\d{1,4}")
_LOCAL_MERCHANT = re.compile(r"LOC-\d{1,6}-\d{1,6}-([a-z]{3})")

# Dead-letter reasons of this module (each also a counter, deadletter.<reason>).
UNKNOWN_CATEGORY = "unknown_category"
UNKNOWN_LINE = "unknown_line"
UNKNOWN_STATION = "unknown_station"
UNKNOWN_MERCHANT = "unknown_merchant"
BAD_ID = "malformed_id"  # an id or name too long, or with characters outside its rule
REASONS = (UNKNOWN_CATEGORY, UNKNOWN_LINE, UNKNOWN_STATION, UNKNOWN_MERCHANT, BAD_ID)


@dataclass(frozen=True)
class Vocabulary:
    metro_lines: frozenset[str]
    bus_lines: frozenset[str]
    districts: frozenset[str]
    stations: frozenset[str]
    merchant_places: frozenset[str]  # merchant cluster and venue ids: a merchant id is one plus "-<n>"

    @classmethod
    def of_city(cls, city: City) -> Vocabulary:
        return cls(
            metro_lines=frozenset(line.id for line in city.metro_lines),
            bus_lines=frozenset(line.id for line in city.bus_lines),
            districts=frozenset(d.id for d in city.districts),
            stations=frozenset(s.id for line in (*city.metro_lines, *city.bus_lines) for s in line.stations),
            merchant_places=frozenset(
                (*(m.id for m in city.merchant_clusters), *(v.id for v in city.venues))
            ),
        )

    def is_line(self, line: str, mode: str) -> bool:
        if mode == "metro":
            return line in self.metro_lines
        if line in self.bus_lines:
            return True
        prefix, _, rest = line.partition("-")
        return (prefix == "bus" and (rest in self.districts or rest == "local")) or (
            prefix == "shuttle" and rest in self.metro_lines
        )

    def is_station(self, station_id: str) -> bool:
        if station_id in self.stations or _GRID_STOP.fullmatch(station_id):
            return True
        return station_id.endswith("-shuttle") and station_id.removesuffix("-shuttle") in self.stations

    def is_merchant(self, merchant_id: str) -> bool:
        numbered = _NUMBERED.fullmatch(merchant_id)
        if numbered and numbered.group(1) in self.merchant_places:
            return True
        local = _LOCAL_MERCHANT.fullmatch(merchant_id)
        return local is not None and any(c.startswith(local.group(1)) for c in MERCHANT_CATEGORIES)


def is_id(value: str) -> bool:
    """An event or tower id: short, and only letters, digits and `._:-` (no free text, no controls)."""
    return bool(ID_PATTERN.fullmatch(value))


def name_problem(field: str, value: str) -> tuple[str, str] | None:
    """(reason, detail) when a name is too long to be checked against the vocabulary at all."""
    if len(value) > MAX_NAME_CHARS:
        return BAD_ID, f"{field}: longer than {MAX_NAME_CHARS} characters"
    return None


def transit_problem(vocab: Vocabulary, line: str, mode: str, station_id: str) -> tuple[str, str] | None:
    """(reason, detail) when a transit event's mode, line or station is outside the vocabulary."""
    for field, value in (("line", line), ("station_id", station_id)):
        problem = name_problem(field, value)
        if problem:
            return problem
    if mode not in TRANSIT_MODES:
        return UNKNOWN_LINE, f"mode: must be one of {list(TRANSIT_MODES)}"
    if not vocab.is_line(line, mode):
        return UNKNOWN_LINE, (
            f"line: not a {mode} line of the city model, bus-<district>, bus-local or shuttle-<metro line>"
        )
    if not vocab.is_station(station_id):
        return (
            UNKNOWN_STATION,
            "station_id: not a station of the city model, BUS-<iy>-<ix> or <station>-shuttle",
        )
    return None


def payment_problem(vocab: Vocabulary, category: str, merchant_id: str) -> tuple[str, str] | None:
    """(reason, detail) when a payment's category or merchant is outside the vocabulary."""
    if category not in MERCHANT_CATEGORIES:
        return UNKNOWN_CATEGORY, f"category: must be one of {list(MERCHANT_CATEGORIES)}"
    problem = name_problem("merchant_id", merchant_id)
    if problem:
        return problem
    if not vocab.is_merchant(merchant_id):
        return UNKNOWN_MERCHANT, (
            "merchant_id: not <merchant cluster or venue of the city model>-<n> or LOC-<iy>-<ix>-<category>"
        )
    return None
