"""The clean topics' record format: one record's events of one kind, as columns.

The ingest edge writes every clean record this way; the aggregators read it. Decoding 1000 JSON event
objects cost about a microsecond per event, most of the aggregator's budget at a megacity's rate, while
these columns become numpy arrays without touching each event. The one-event-per-record JSON format
stays the external one (raw topics); `decode_record` still reads JSON clean records (an array or one
event), so a hand-written or older clean record is aggregated the same way.

Layout: `MAGIC`, then a msgpack array (`_Wire`):
- kind, the H3 resolution of the cells, and the event count n;
- `ts_ms`: n little-endian int64;
- `person`: n x 10 bytes, each the 20 hex characters of the keyed pseudonym;
- `cell`: n little-endian uint64 H3 indexes at that resolution, computed by the ingest edge;
- `event_id`: the n event ids (msgpack strings, decoded only when asked for);
- `cats`: per category column of the kind (`CATEGORIES`), [distinct values, one code per event];
- `amount_cny`: n little-endian float64 for payments, empty otherwise;
- the events' provenance (`Provenance`, optional: records of other writers and older ones have none):
  the raw sources, each with its floor and the span of raw keys this record accounts for, then per
  event its source's index, raw offset and element index. The aggregators skip an event whose raw key
  they already counted (cityscreen/aggregate/repeats.py): an ingest worker killed before committing its
  offsets makes its successor write the same events again.
Nothing else of the event travels: no tower, merchant or station id, and no position but the cell.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import msgspec
import numpy as np

from cityscreen.events import CleanEvent, PaymentEvent, SimEvent, TransitEvent, decode_clean_many
from cityscreen.geo import cell_id_for, cell_name
from cityscreen.pseudonym import PSEUDONYM_HEX_CHARS

MAGIC = b"\xc1cb1"  # 0xc1 is never valid msgpack or JSON, so a batch is never mistaken for either
PERSON_BYTES = PSEUDONYM_HEX_CHARS // 2
CATEGORIES: dict[str, tuple[str, ...]] = {
    "sim": ("gender", "age_band", "origin"),
    "payment": ("category", "origin"),
    "transit": ("tap", "mode", "line"),
}
_KIND_OF = {SimEvent: "sim", PaymentEvent: "payment", TransitEvent: "transit"}


class BatchError(ValueError):
    """A clean record that is neither a clean batch nor clean JSON."""


Key = tuple[int, int]  # an event's raw key: (offset of its raw record, index of the element in it)
Span = tuple[str, int, Key, Key]  # raw source, floor offset, first and last raw key accounted for


@dataclass(frozen=True)
class Provenance:
    """Where a record's events come from, so that an event written twice is counted once.

    `spans` has one entry per raw source ("topic:partition") of the record's events: its floor (every
    event of the source below that raw offset that belongs in this partition was written before this
    record: the ingest worker read it in an earlier batch, delivered, or it was committed by a worker
    before) and the first and last raw keys this record accounts for (the records one batch writes to
    one partition cut the batch's raw keys into adjacent spans, so none of them ever holds back another).
    Per event: `source` (index into `spans`), `offset` and `element` (its raw key)."""

    spans: list[Span]
    source: np.ndarray  # uint8 or uint16
    offset: np.ndarray  # int64
    element: np.ndarray  # uint32


class _Wire(msgspec.Struct, array_like=True):
    kind: str
    res: int
    n: int
    ts_ms: bytes
    person: bytes
    cell: bytes
    event_id: msgspec.Raw
    cats: dict[str, tuple[list[str], bytes]]
    amount_cny: bytes
    # provenance, last and optional: a record written without it (older, or by another writer) decodes
    spans: list[tuple[str, int, tuple[int, int], tuple[int, int]]] = msgspec.field(default_factory=list)
    source: bytes = b""
    offset: bytes = b""
    element: bytes = b""


_ENC = msgspec.msgpack.Encoder()
_WIRE = msgspec.msgpack.Decoder(_Wire)
_STRS = msgspec.msgpack.Decoder(list[str])


def _coded(values: Sequence[str]) -> tuple[list[str], bytes]:
    """[distinct values, each event's index into them] (uint8, or uint16 beyond 255 values)."""
    index = {v: i for i, v in enumerate(dict.fromkeys(values))}
    dtype = "<u1" if len(index) <= 256 else "<u2"
    return list(index), np.fromiter(map(index.__getitem__, values), dtype, len(values)).tobytes()


def encode_batch(kind: str, events: Sequence[CleanEvent], res: int) -> bytes:
    """A clean record of events of one kind, with cells at H3 resolution `res`."""
    if any(_KIND_OF[type(e)] != kind for e in events):
        raise BatchError(f"a clean batch holds one kind of event; got others among {kind!r} events")
    amounts = None
    if kind == "payment":
        amounts = np.array([e.amount_cny for e in events], "<f8")  # type: ignore[union-attr]
    return encode_columns(
        kind,
        res,
        ts_ms=np.array([e.ts_ms for e in events], "<i8"),
        persons="".join(e.person for e in events),
        cell=np.array([cell_id_for(e.lat, e.lng, res) for e in events], "<u8"),
        event_ids=[e.event_id for e in events],
        cats={name: [getattr(e, name) for e in events] for name in CATEGORIES[kind]},
        amount_cny=amounts,
    )


def encode_columns(
    kind: str,
    res: int,
    *,
    ts_ms: np.ndarray,
    persons: str,
    cell: np.ndarray,
    event_ids: Sequence[str],
    cats: Mapping[str, Sequence[str]],
    amount_cny: np.ndarray | None,
    provenance: Provenance | None = None,
) -> bytes:
    """A clean record from its columns (`persons`: the pseudonyms joined): what `encode_batch` writes,
    for a caller that already holds columns (the ingest edge's batch path) and no event objects."""
    n = len(event_ids)
    if len(persons) != PSEUDONYM_HEX_CHARS * n:
        raise BatchError(f"every person must be a {PSEUDONYM_HEX_CHARS}-character pseudonym")
    prov = provenance
    wire = _Wire(
        kind=kind,
        res=res,
        n=n,
        ts_ms=np.asarray(ts_ms, "<i8").tobytes(),
        person=bytes.fromhex(persons),
        cell=np.asarray(cell, "<u8").tobytes(),
        event_id=msgspec.Raw(_ENC.encode(list(event_ids))),
        cats={name: _coded(cats[name]) for name in CATEGORIES[kind]},
        amount_cny=b"" if kind != "payment" else np.asarray(amount_cny, "<f8").tobytes(),
        spans=[] if prov is None else list(prov.spans),
        source=b"" if prov is None else np.asarray(prov.source, _source_dtype(len(prov.spans))).tobytes(),
        offset=b"" if prov is None else np.asarray(prov.offset, "<i8").tobytes(),
        element=b"" if prov is None else np.asarray(prov.element, "<u4").tobytes(),
    )
    return MAGIC + _ENC.encode(wire)


def _source_dtype(sources: int) -> str:
    return "<u1" if sources <= 256 else "<u2"


class CleanBatch:
    """A decoded clean record: numpy views of its columns; strings only on demand."""

    def __init__(self, wire: _Wire) -> None:
        n = wire.n
        self.kind, self.res, self.n = wire.kind, wire.res, n
        if wire.kind not in CATEGORIES:
            raise BatchError(f"clean batch of unknown kind {wire.kind!r}")
        self.ts_ms = np.frombuffer(wire.ts_ms, "<i8")
        self.cell = np.frombuffer(wire.cell, "<u8")
        self.person_bytes = wire.person
        self.cats = {
            name: (values, np.frombuffer(codes, "<u1" if len(values) <= 256 else "<u2"))
            for name, (values, codes) in wire.cats.items()
        }
        self.amount_cny = np.frombuffer(wire.amount_cny, "<f8") if wire.kind == "payment" else None
        self._event_id = wire.event_id
        sizes = [len(self.ts_ms), len(self.cell), len(wire.person) // PERSON_BYTES]
        sizes += [len(codes) for _, codes in self.cats.values()]
        if self.amount_cny is not None:
            sizes.append(len(self.amount_cny))
        self.provenance: Provenance | None = None
        if wire.spans:
            self.provenance = Provenance(
                list(wire.spans),  # msgspec decodes the keys as the tuples the type names
                np.frombuffer(wire.source, _source_dtype(len(wire.spans))),
                np.frombuffer(wire.offset, "<i8"),
                np.frombuffer(wire.element, "<u4"),
            )
            prov = self.provenance
            sizes += [len(prov.source), len(prov.offset), len(prov.element)]
            if len(prov.source) and int(prov.source.max()) >= len(prov.spans):
                raise BatchError("clean batch provenance names a raw source it does not list")
        if any(s != n for s in sizes) or set(self.cats) != set(CATEGORIES[wire.kind]):
            raise BatchError(f"clean batch columns disagree with its {n} events (or miss a category)")

    @cached_property
    def person_keys(self) -> np.ndarray:
        """A 64-bit key per event's person: the pseudonym's last 8 bytes (its first ones pick the
        partition, so within a partition they vary less). See docs/streams.md on collisions."""
        raw = np.frombuffer(self.person_bytes, np.uint8).reshape(self.n, PERSON_BYTES)
        return np.ascontiguousarray(raw[:, PERSON_BYTES - 8 :]).view("<u8").reshape(self.n)

    def category(self, name: str) -> list[str]:
        values, codes = self.cats[name]
        return [values[c] for c in codes.tolist()]

    def event_ids(self) -> list[str]:
        return _STRS.decode(self._event_id)

    def persons(self) -> list[str]:
        text = self.person_bytes.hex()
        return [text[i : i + PSEUDONYM_HEX_CHARS] for i in range(0, len(text), PSEUDONYM_HEX_CHARS)]

    def rows(self, indexes: Sequence[int]) -> list[dict[str, Any]]:
        """Some events as plain dicts (dead letters): the fields this format carries."""
        ids, persons = self.event_ids(), self.persons()
        cats = {name: self.category(name) for name in self.cats}
        out = []
        for i in indexes:
            row: dict[str, Any] = {"kind": self.kind, "event_id": ids[i], "ts_ms": int(self.ts_ms[i]),
                                   "person": persons[i], "cell": cell_name(int(self.cell[i]))}  # fmt: skip
            row.update((name, col[i]) for name, col in cats.items())
            if self.amount_cny is not None:
                row["amount_cny"] = float(self.amount_cny[i])
            out.append(row)
        return out


def is_batch(value: bytes) -> bool:
    return value[: len(MAGIC)] == MAGIC


def decode_batch(value: bytes) -> CleanBatch:
    """Decode a clean batch. Raises BatchError (or msgspec's errors) on anything else."""
    if not is_batch(value):
        raise BatchError("not a clean batch (no magic prefix)")
    return CleanBatch(_WIRE.decode(memoryview(value)[len(MAGIC) :]))


def decode_record(value: bytes, res: int) -> list[CleanBatch]:
    """A clean record as batches: itself, or a JSON record's events as one batch per run of one kind
    (none for an empty array), cells at `res`."""
    if is_batch(value):
        return [decode_batch(value)]
    events = decode_clean_many(value)
    out, start = [], 0
    for i in range(1, len(events) + 1):
        if i == len(events) or type(events[i]) is not type(events[start]):
            kind = _KIND_OF[type(events[start])]
            out.append(decode_batch(encode_batch(kind, events[start:i], res)))
            start = i
    return out


def kind_of(event: CleanEvent) -> str:
    return _KIND_OF[type(event)]
