"""Partial aggregates: one partition's exact statistics of one window, and how partials merge.

Clean topics are partitioned by person, so the persons behind a statistic in two partitions are disjoint:
values and persons add, and the largest single contribution is the maximum of the partitions' maxima.
Amounts travel as integer fen and become CNY only in the final `WindowAggregate`.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from functools import lru_cache

import msgspec

from cityscreen.aggregates import FlowAggregate, Measure, WindowAggregate, parse_stat_key, stat_key
from cityscreen.demography import BREAKDOWN_CATEGORIES
from cityscreen.gcpause import gc_paused

# value, persons, top_person_value (amounts in fen)
Cell = dict[str, tuple[int, int, int]]


class Partial(msgspec.Struct, array_like=True):
    window_start_ms: int
    partition: int
    cells: dict[int, dict[str, Cell]]  # res -> cell -> stat key -> (value, persons, top)
    flows: list[tuple[str, str, str, int]]  # origin, dest, kind, persons
    late_events: int = 0
    span_s: int = 0  # 0: a base window; else the length of the longer window it covers (spans.py)


def final_through_ms(part: Partial, window_s: int) -> int:
    """What the message carrying this partial says is final for its partition: its own window for a
    base window; for a span, the base windows before its last one (the engine sends a span before the
    base partial of its last window, and that partial's message completes both)."""
    if not part.span_s:
        return part.window_start_ms
    return part.window_start_ms + (part.span_s - 2 * window_s) * 1000


class PartialMessage(msgspec.Struct, array_like=True):
    """What an aggregate worker sends to the release agent: progress of one partition, maybe a partial."""

    partition: int
    closed_through_ms: int  # every window starting at or before this is final for the partition
    partial: Partial | None = None
    # computed ahead of the close (partition.py: `speculate`): "final" only if the close sends the same
    speculative: bool = False


class MessageHeader(msgspec.Struct, array_like=True):
    """A partials-topic record as the release agent reads it: the partial stays compressed bytes
    (`blob`), decoded only where the window is merged (the gate process, streams/release.py)."""

    partition: int
    closed_through_ms: int
    window_start_ms: int | None  # of the partial, when there is one
    blob: bytes | None  # the partial: zlib-compressed msgpack
    span_s: int = 0  # of the partial: 0 for a base window
    speculative: bool = False  # see PartialMessage


_KEY_SETS = 65_536  # distinct key sets of a cell remembered (a window has a few hundred)
_ENC = msgspec.msgpack.Encoder()
_HEADER = msgspec.msgpack.Decoder(MessageHeader)
_PARTIAL = msgspec.msgpack.Decoder(Partial)


def encode_message(message: PartialMessage) -> bytes:
    part = message.partial
    blob = None if part is None else zlib.compress(_ENC.encode(part), 1)
    window = None if part is None else part.window_start_ms
    span_s = 0 if part is None else part.span_s
    through = message.closed_through_ms
    return _ENC.encode(MessageHeader(message.partition, through, window, blob, span_s, message.speculative))


def decode_header(data: bytes) -> MessageHeader:
    return _HEADER.decode(data)


def decode_partial(blob: bytes) -> Partial:
    return _PARTIAL.decode(zlib.decompress(blob))


def decode_message(data: bytes) -> PartialMessage:
    head = decode_header(data)
    partial = None if head.blob is None else decode_partial(head.blob)
    return PartialMessage(head.partition, head.closed_through_ms, partial, head.speculative)


def merge_partials(partials: Iterable[Partial]) -> Partial | None:
    """Add up partials of one window from distinct partitions (None when there are none)."""
    with gc_paused():
        return _merge(partials)


def _merge(partials: Iterable[Partial]) -> Partial | None:
    merged: Partial | None = None
    flows: dict[tuple[str, str, str], int] = {}
    for part in partials:
        if merged is None:
            merged = Partial(part.window_start_ms, -1, {}, [], 0, part.span_s)
        merged.late_events += part.late_events
        for res, cells in part.cells.items():
            mcells = merged.cells.setdefault(res, {})
            for cell, stats in cells.items():
                mstats = mcells.get(cell)
                if mstats is None:
                    mcells[cell] = dict(stats)
                    continue
                for key, v in stats.items():
                    old = mstats.get(key)
                    if old is None:
                        mstats[key] = v
                    else:
                        mstats[key] = (old[0] + v[0], old[1] + v[1], old[2] if old[2] >= v[2] else v[2])
        for origin, dest, kind, persons in part.flows:
            flows[(origin, dest, kind)] = flows.get((origin, dest, kind), 0) + persons
    if merged is not None:
        merged.flows = [(o, d, k, n) for (o, d, k), n in sorted(flows.items())]
    return merged


@lru_cache(maxsize=_KEY_SETS)
def _zero_fill(keys: frozenset[str]) -> tuple[str, ...]:
    """The breakdown keys to zero-fill in a cell holding `keys` (cells share a few key sets)."""
    out: dict[str, None] = {}
    for key in keys:
        layer, metric, dimension, _ = parse_stat_key(key)
        if dimension is not None:
            continue
        for dim, cats in BREAKDOWN_CATEGORIES.items():
            if not any(k.startswith(f"{layer}.{metric}|{dim}=") for k in keys):
                continue
            for cat in cats:
                out[stat_key(layer, metric, dim, cat)] = None
    return tuple(k for k in out if k not in keys)


@lru_cache(maxsize=_KEY_SETS)
def _layout(keys: frozenset[str]) -> tuple[tuple[str, bool], ...]:
    """A completed cell's keys in sorted order, each with whether it is an amount (fen)."""
    return tuple((k, k.startswith("payments.amount_cny")) for k in sorted(keys.union(_zero_fill(keys))))


_ZERO = (0, 0, 0)


def _measures(stats: Cell) -> dict[str, Measure]:
    get = stats.get
    out = {}
    for key, is_amount in _layout(frozenset(stats)):
        value, persons, top = get(key, _ZERO)
        if is_amount:
            out[key] = Measure(value / 100, persons, top / 100)
        else:
            out[key] = Measure(float(value), persons, float(top))
    return out


def finalize(
    partial: Partial, *, window_s: int, base_res: int, flow_res: int, layers: tuple[str, ...] = ()
) -> WindowAggregate:
    """The exact `WindowAggregate` of a merged partial, breakdowns completed, keys in sorted order;
    `window_s`: the base window (a span partial covers its own `span_s`)."""
    with gc_paused():
        return _finalize(partial, window_s=partial.span_s or window_s, base_res=base_res,
                         flow_res=flow_res, layers=layers)  # fmt: skip


def _finalize(
    partial: Partial, *, window_s: int, base_res: int, flow_res: int, layers: tuple[str, ...]
) -> WindowAggregate:
    cells = {
        res: {cell: _measures(stats) for cell, stats in sorted(partial.cells[res].items())}
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
        layers=list(layers),
    )
