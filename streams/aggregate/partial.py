"""Partial aggregates: one partition's exact statistics of one window, and how partials merge.

Clean topics are partitioned by person, so the persons behind a statistic in two partitions are disjoint:
values and persons add, and the largest single contribution is the maximum of the partitions' maxima.
Amounts travel as integer fen and become CNY only in the final `WindowAggregate`.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

import msgspec

from cityscreen.aggregates import FlowAggregate, Measure, WindowAggregate, parse_stat_key, stat_key
from cityscreen.demography import BREAKDOWN_CATEGORIES

# value, persons, top_person_value (amounts in fen)
Cell = dict[str, tuple[int, int, int]]


class Partial(msgspec.Struct, array_like=True):
    window_start_ms: int
    partition: int
    cells: dict[int, dict[str, Cell]]  # res -> cell -> stat key -> (value, persons, top)
    flows: list[tuple[str, str, str, int]]  # origin, dest, kind, persons
    late_events: int = 0


class PartialMessage(msgspec.Struct, array_like=True):
    """What an aggregate worker sends to the release agent: progress of one partition, maybe a partial."""

    partition: int
    closed_through_ms: int  # every window starting at or before this is final for the partition
    partial: Partial | None = None


_ENC = msgspec.msgpack.Encoder()
_DEC = msgspec.msgpack.Decoder(PartialMessage)


def encode_message(message: PartialMessage) -> bytes:
    return zlib.compress(_ENC.encode(message), 1)


def decode_message(data: bytes) -> PartialMessage:
    return _DEC.decode(zlib.decompress(data))


def merge_partials(partials: Iterable[Partial]) -> Partial | None:
    """Add up partials of one window from distinct partitions (None when there are none)."""
    merged: Partial | None = None
    flows: dict[tuple[str, str, str], int] = {}
    for part in partials:
        if merged is None:
            merged = Partial(part.window_start_ms, -1, {}, [], 0)
        merged.late_events += part.late_events
        for res, cells in part.cells.items():
            mcells = merged.cells.setdefault(res, {})
            for cell, stats in cells.items():
                mstats = mcells.setdefault(cell, {})
                for key, (value, persons, top) in stats.items():
                    old = mstats.get(key)
                    mstats[key] = (
                        (value, persons, top)
                        if old is None
                        else (old[0] + value, old[1] + persons, max(old[2], top))
                    )
        for origin, dest, kind, persons in part.flows:
            flows[(origin, dest, kind)] = flows.get((origin, dest, kind), 0) + persons
    if merged is not None:
        merged.flows = [(o, d, k, n) for (o, d, k), n in sorted(flows.items())]
    return merged


def _complete(stats: Cell) -> Cell:
    """Zero-fill every fixed breakdown of a metric present in the cell (an empty category is data too)."""
    out = dict(stats)
    for key in stats:
        layer, metric, dimension, _ = parse_stat_key(key)
        if dimension is not None:
            continue
        for dim, cats in BREAKDOWN_CATEGORIES.items():
            probe = [k for k in stats if k.startswith(f"{layer}.{metric}|{dim}=")]
            if not probe:
                continue
            for cat in cats:
                out.setdefault(stat_key(layer, metric, dim, cat), (0, 0, 0))
    return out


def _measure(key: str, value: int, persons: int, top: int) -> Measure:
    if key.startswith("payments.amount_cny"):
        return Measure(value / 100, persons, top / 100)
    return Measure(float(value), persons, float(top))


def finalize(partial: Partial, *, window_s: int, base_res: int, flow_res: int) -> WindowAggregate:
    """The exact `WindowAggregate` of a merged partial, breakdowns completed, keys in sorted order."""
    cells = {
        res: {
            cell: {key: _measure(key, *v) for key, v in sorted(_complete(stats).items())}
            for cell, stats in sorted(partial.cells[res].items())
        }
        for res in sorted(partial.cells, reverse=True)
    }
    flows = [FlowAggregate(o, d, k, n) for o, d, k, n in partial.flows]  # type: ignore[arg-type]
    return WindowAggregate(
        window_start_ms=partial.window_start_ms,
        window_s=window_s,
        base_res=base_res,
        flow_res=flow_res,
        cells=cells,
        flows=flows,
        late_events=partial.late_events,
    )
