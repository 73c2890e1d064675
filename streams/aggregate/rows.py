"""Binning: clean events to compact rows (window, base cell, released categories), built as columns.

A record's rows are seven columns of plain values, so that a batch of tens of thousands of events is
binned with a few tight loops and can be persisted (streams/aggregate/codec.py) and replayed unchanged.
The H3 lookup is cached: towers, stations and shops repeat, so almost every lookup is a dictionary hit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cityscreen.demography import ORIGIN_REGIONS
from cityscreen.events import CleanEvent, PaymentEvent, SimEvent
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


def to_fen(amount_cny: float, clip_cny: float | None) -> int:
    """Amounts are summed as integer fen so that totals are exact whatever order partitions merge in."""
    if clip_cny is not None and amount_cny > clip_cny:
        amount_cny = clip_cny
    return round(amount_cny * 100)


def window_of(ts_ms: int, window_ms: int) -> int:
    return ts_ms - ts_ms % window_ms


def kind_of(event: CleanEvent) -> str:
    if isinstance(event, SimEvent):
        return KIND_SIM
    return KIND_PAYMENT if isinstance(event, PaymentEvent) else KIND_TRANSIT


class _Regions(dict[str, str]):
    """The released origin region; the clean topics may carry the province code or the region itself."""

    def __missing__(self, origin: str) -> str:
        return origin  # an unknown code is its own region


_REGIONS = _Regions(ORIGIN_REGIONS)
_CELLS: dict[int, dict[tuple[float, float], str]] = {}  # res -> (lat, lng) -> cell
_CELL_MEMO_MAX = 262_144


def cells_of(lats: list[float], lngs: list[float], res: int) -> list[str]:
    """The cells of many positions (memoised: towers, stations and shops repeat)."""
    memo = _CELLS.setdefault(res, {})
    out = list(map(memo.get, zip(lats, lngs, strict=True)))
    if None in out:
        if len(memo) > _CELL_MEMO_MAX:
            memo.clear()
        for lat, lng in zip(lats, lngs, strict=True):
            if (lat, lng) not in memo:
                memo[(lat, lng)] = cell_for(lat, lng, res)
        out = list(map(memo.__getitem__, zip(lats, lngs, strict=True)))
    return out  # type: ignore[return-value]


def columns_of(
    kind: str, events: Sequence[Any], res: int, clip_cny: float | None, times: list[int] | None = None
) -> list[list[Any]]:
    """The rows of events of one kind as seven columns, laid out as the row types above (`times`: their
    times, when the caller has them already)."""
    cols: list[list[Any]] = [
        [e.ts_ms for e in events] if times is None else times,
        [e.event_id for e in events],
        [e.person for e in events],
        cells_of([e.lat for e in events], [e.lng for e in events], res),
    ]
    if kind == KIND_SIM:
        cols += [[e.gender for e in events], [e.age_band for e in events]]
        cols.append(list(map(_REGIONS.__getitem__, [e.origin for e in events])))
    elif kind == KIND_PAYMENT:
        cols.append([e.category for e in events])
        cols.append([to_fen(e.amount_cny, clip_cny) for e in events])
        cols.append(list(map(_REGIONS.__getitem__, [e.origin for e in events])))
    else:
        cols += [[e.tap for e in events], [e.mode for e in events], [e.line for e in events]]
    return cols
