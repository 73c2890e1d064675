"""Binning: clean events to compact rows (window, base cell, released categories), one tuple per event.

Rows are plain tuples so that a batch of tens of thousands of events is binned with one tight loop and
can be persisted (msgpack) and replayed unchanged. The H3 lookup is cached: towers, stations and shops
repeat, so almost every lookup is a dictionary hit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cityscreen.demography import ORIGIN_REGIONS
from cityscreen.events import CleanEvent, PaymentEvent, SimEvent, TransitEvent
from cityscreen.geo import cell_for

KIND_SIM, KIND_PAYMENT, KIND_TRANSIT = "sim", "payment", "transit"
KINDS: tuple[str, ...] = (KIND_SIM, KIND_PAYMENT, KIND_TRANSIT)

# (ts_ms, event_id, person, base_cell, gender, age_band, origin_region)
SimRow = tuple[int, str, str, str, str, str, str]
# (ts_ms, event_id, person, base_cell, category, amount_fen, origin_region)
PaymentRow = tuple[int, str, str, str, str, int, str]
# (ts_ms, event_id, person, base_cell, tap, mode, line)
TransitRow = tuple[int, str, str, str, str, str, str]
Row = tuple[Any, ...]


def region_of(origin: str) -> str:
    """The released origin region; the clean topics may carry the province code or the region itself."""
    return ORIGIN_REGIONS.get(origin, origin)


def to_fen(amount_cny: float, clip_cny: float | None) -> int:
    """Amounts are summed as integer fen so that totals are exact whatever order partitions merge in."""
    if clip_cny is not None and amount_cny > clip_cny:
        amount_cny = clip_cny
    return round(amount_cny * 100)


def window_of(ts_ms: int, window_ms: int) -> int:
    return ts_ms - ts_ms % window_ms


def row_of(event: CleanEvent, res: int, clip_cny: float | None) -> Row:
    """One event's row (see the row types above)."""
    cell = cell_for(event.lat, event.lng, res)
    if isinstance(event, SimEvent):
        return (
            event.ts_ms, event.event_id, event.person, cell,
            event.gender, event.age_band, region_of(event.origin),
        )  # fmt: skip
    if isinstance(event, PaymentEvent):
        return (
            event.ts_ms, event.event_id, event.person, cell,
            event.category, to_fen(event.amount_cny, clip_cny), region_of(event.origin),
        )  # fmt: skip
    assert isinstance(event, TransitEvent)
    return (event.ts_ms, event.event_id, event.person, cell, event.tap, event.mode, event.line)


def rows_of(events: Sequence[CleanEvent], res: int, clip_cny: float | None) -> list[Row]:
    return [row_of(e, res, clip_cny) for e in events]


def kind_of(event: CleanEvent) -> str:
    if isinstance(event, SimEvent):
        return KIND_SIM
    return KIND_PAYMENT if isinstance(event, PaymentEvent) else KIND_TRANSIT
