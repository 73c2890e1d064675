"""The ingest edge's batch path: many raw records validated, pseudonymised and binned as columns.

`cityscreen.ingest.Validator` is the reference: one event at a time, every rule in `problem`. This path
gives the same clean batches and the same dead letters (tests/unit/test_ingest_batch.py compares them on
a large random input), with the per-event Python steps replaced by batch ones:
- a record's events are decoded in one call into typed structs (an array with `list[RawEvent]`); a
  record that fails that call (oversize, too deep, malformed, one bad element) goes through the
  reference path's decoding, which finds the exact reason per element;
- the rules run as numpy comparisons over a kind's whole batch, and the vocabulary rules once per
  distinct name; an event any batch rule doubts is judged by the reference `problem`, so a batch rule
  only has to be sufficient for validity, never to name the reason;
- pseudonyms come from one memo lookup per event (one HMAC per identifier new in its period), the
  partition from the pseudonyms' bytes at once, the H3 cell once per distinct position.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from itertools import repeat
from operator import attrgetter, itemgetter

import msgspec
import numpy as np

from cityscreen.clean_batch import CATEGORIES, Provenance, encode_columns
from cityscreen.deadletter import DeadLetter
from cityscreen.events import (
    AGE_BANDS,
    SCHEMA_VERSION,
    CleanEvent,
    RawEvent,
    RawPayment,
    RawSim,
    RawTransit,
)
from cityscreen.geo import cell_id_for
from cityscreen.ingest import (
    ACCEPTED,
    MAX_AGE_YEARS,
    MAX_JSON_DEPTH,
    IngestConfig,
    IngestResult,
    Validator,
    Where,
    to_clean,
)
from cityscreen.ingest_masks import ids_ok, lengths_ok, origins_ok, years
from cityscreen.json_depth import is_too_deep
from cityscreen.provenance import batch_bounds, record_provenance, source_name
from cityscreen.vocabulary import payment_problem, transit_problem

RECORD_EVENTS = 1000  # clean events per output record: ~45 kB as a clean batch, ~58 kB with raw keys
Record = tuple[bytes | None, str, int, int]  # value, topic, partition, offset
Letter = tuple[tuple[int, int], DeadLetter]  # (record, element) in the batch, and its dead letter
Sources = tuple[list[str], dict[str, tuple[int, int]]]  # raw source names, and each one's offset bounds
_ONE = msgspec.json.Decoder(RawEvent)
_MANY = msgspec.json.Decoder(list[RawEvent])
_ELEMENTS = msgspec.json.Decoder(list[msgspec.Raw])
_KINDS = {RawSim: "sim", RawPayment: "payment", RawTransit: "transit"}
_KIND_CODE: dict[type, int] = {cls: code for code, cls in enumerate(_KINDS)}
_IDENTIFIER = {"sim": "imsi", "payment": "account", "transit": "card"}
_SAFE_TS_MS = 1 << 52  # beyond this an event time is judged per event (no int64 overflow, exact floats)
_BAND_UPPERS = np.array([17, 24, 34, 44, 54, 64])  # cityscreen.demography.age_band's upper ages
_VALUE, _TOPIC_PARTITION, _OFFSET = itemgetter(0), itemgetter(1, 2), itemgetter(3)  # of a Record
_RECORD_ELEMENT = itemgetter(0), itemgetter(1)  # of an event's (record index, element index)


@dataclass
class _Block:
    """One kind's valid events of one output partition, in input order, with their raw keys."""

    raws: list[RawEvent]
    persons: list[str]
    ages: list[str] | None  # age bands (sim only)
    keys: tuple[np.ndarray, np.ndarray, np.ndarray]  # per event: raw source index, offset, element

    def records(
        self, kind: str, res: int, sources: tuple[list[str], dict[str, tuple[int, int]]] | None
    ) -> list[bytes]:
        """Clean batches of up to RECORD_EVENTS events; each column taken from the events once.
        `sources` (the batch's raw source names and bounds): each record says which raw keys it holds
        (cityscreen.provenance); None: records without provenance."""
        n = len(self.raws)
        cuts = [*range(0, n, RECORD_EVENTS), n]
        provs: list[Provenance | None] = [None] * (len(cuts) - 1)
        if sources is not None:
            provs = list(record_provenance(*sources, *self.keys, cuts))
        cell = cells(_num(self.raws, "lat", np.float64), _num(self.raws, "lng", np.float64), res)
        ts = _num(self.raws, "ts_ms", np.int64)
        amounts = _num(self.raws, "amount_cny", np.float64) if kind == "payment" else None
        ids = _strs(self.raws, "event_id")
        cats = {
            name: self.ages if name == "age_band" and self.ages else _strs(self.raws, name)
            for name in CATEGORIES[kind]
        }
        out = []
        for lo, prov in zip(range(0, n, RECORD_EVENTS), provs, strict=False):
            hi = lo + RECORD_EVENTS
            cols = {name: values[lo:hi] for name, values in cats.items()}
            amount = None if amounts is None else amounts[lo:hi]
            persons = "".join(self.persons[lo:hi])
            record = encode_columns(kind, res, ts_ms=ts[lo:hi], persons=persons, cell=cell[lo:hi],
                                    event_ids=ids[lo:hi], cats=cols, amount_cny=amount,
                                    provenance=prov)  # fmt: skip
            out.append(record)
        return out


@dataclass
class BatchResult:
    """A batch's output: clean events per (kind, partition) as columns, dead letters and counters."""

    blocks: dict[tuple[str, int], _Block] = field(default_factory=dict)
    dead: list[DeadLetter] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    sources: list[str] = field(default_factory=list)  # the batch's raw sources ("topic:partition")
    bounds: dict[str, tuple[int, int]] = field(default_factory=dict)  # per source: first, last offset

    def records(self, res: int, provenance: bool = True) -> list[tuple[str, int, bytes]]:
        """(kind, partition, clean batch) records of up to RECORD_EVENTS events, as the edge sends them
        (with provenance: the aggregators then count an event written twice once)."""
        sources = (self.sources, self.bounds) if provenance else None
        return [
            (kind, partition, value)
            for (kind, partition), block in self.blocks.items()
            for value in block.records(kind, res, sources)
        ]

    @cached_property
    def clean(self) -> dict[tuple[str, int], list[CleanEvent]]:
        """The clean events as objects, like `IngestResult.clean` (tests and tools; the edge sends
        `records`)."""
        return {
            key: [to_clean(r, _Fixed(p)) for r, p in zip(block.raws, block.persons, strict=True)]
            for key, block in self.blocks.items()
        }


class _Fixed:
    """A pseudonymizer that answers one precomputed pseudonym (to build a clean event from columns)."""

    def __init__(self, person: str) -> None:
        self.person = person

    def __call__(self, identifier: str, ts_ms: int, domain: str) -> str:
        return self.person


class _Collector(Validator):
    """The reference path's decoding, keeping what it decoded instead of judging it event by event:
    `outcomes` holds, per element of the record in order, its event or its dead letter."""

    outcomes: list[RawEvent | DeadLetter]

    def _accept(self, result: IngestResult, raw: RawEvent, element: bytes, where: Where, now_ms: int) -> None:
        self.outcomes.append(raw)

    def _dead(self, result: IngestResult, *args: object, **kwargs: object) -> None:
        super()._dead(result, *args, **kwargs)  # type: ignore[arg-type]
        self.outcomes.append(result.dead[-1])


def cells(lat: np.ndarray, lng: np.ndarray, res: int) -> np.ndarray:
    """H3 cells (uint64) of positions, computed once per distinct position of the batch."""
    if not len(lat):
        return np.zeros(0, np.uint64)
    pairs = np.stack([lat, lng], axis=1).view(np.complex128).ravel()
    unique, inverse = np.unique(pairs, return_inverse=True)
    ids = np.array([cell_id_for(p.real, p.imag, res) for p in unique.tolist()], np.uint64)
    return ids[inverse.ravel()]


class BatchValidator:
    """Raw records in, a `BatchResult` out: the reference `Validator`'s output, computed in batches."""

    def __init__(self, config: IngestConfig) -> None:
        self.config = config
        self.reference = Validator(config)
        self._collector = _Collector(config)
        self._collector.pseudonym = self.reference.pseudonym
        self._collector._memo = self.reference._memo

    def run(self, records: Sequence[Record], now_ms: int) -> BatchResult:
        """Validate a batch of records. Never raises for a record's content: like the reference path,
        whatever fails on one record dead-letters that record (or element) alone."""
        result = BatchResult()
        # per record: its raw source's index and offset (an event's raw key adds its element index)
        tps = list(map(_TOPIC_PARTITION, records))
        index = {tp: i for i, tp in enumerate(dict.fromkeys(tps))}
        origin = (
            np.fromiter(map(index.__getitem__, tps), np.int64, len(tps)),
            np.fromiter(map(_OFFSET, records), np.int64, len(records)),
        )
        result.sources = [source_name(*tp) for tp in index]
        result.bounds = batch_bounds(result.sources, *origin)
        letters: list[Letter] = []
        by_kind: dict[str, tuple[list[RawEvent], list[tuple[int, int]]]] = {k: ([], []) for k in CATEGORIES}
        singles = self._decode_singles(records)
        if singles is not None:  # one event per record: grouped by kind in C-level loops
            codes = np.fromiter(map(_KIND_CODE.__getitem__, map(type, singles)), np.int8, len(singles))
            for code, kind in enumerate(_KINDS.values()):
                idx = np.flatnonzero(codes == code).tolist()
                by_kind[kind] = (list(map(singles.__getitem__, idx)), list(zip(idx, repeat(0))))
        for i, (value, topic, partition, offset) in enumerate(records if singles is None else ()):
            value = value or b""
            events = self._decode(value)
            if events is None:  # the reference path finds each element's fate and reason
                events = self._decode_slowly(i, value, (topic, partition, offset, now_ms), letters, result)
            for j, raw in events:
                raws, seqs = by_kind[_KINDS[type(raw)]]
                raws.append(raw)
                seqs.append((i, j))
        for kind, (raws, seqs) in by_kind.items():
            if raws:
                self._kind(result, letters, records, origin, kind, (raws, seqs), now_ms)
        letters.sort(key=lambda x: x[0])
        result.dead.extend(letter for _, letter in letters)
        return result

    def _decode_singles(self, records: Sequence[Record]) -> list[RawEvent] | None:
        """Every record's event in one call, when each record is one JSON object (what external
        producers send), else None. Joined by newlines and read with `decode_lines`: with no newline
        inside a record, each record is one line; a line holds at most one value (more is an error) and
        a blank one none, so as many events as records means one event per record, in order. The
        checks run over the joined bytes, in C: per record in Python they took about a tenth of the
        validator's time."""
        values = list(map(_VALUE, records))
        n = len(values)
        if not n or None in values or max(map(len, values)) > self.config.max_payload_bytes:
            return None
        joined = b"\n".join(values)
        if joined.count(b"\n") != n - 1:  # a newline inside a record
            return None
        try:
            events = _ONE.decode_lines(joined)
        except Exception:  # one bad record: each is decoded alone
            return None
        if len(events) != n:
            return None
        # one `{` per record and no `[` at all: nothing nests (a bracket in a string only adds to the
        # counts, and then the exact check runs); deeper records are named by the reference path
        if (joined.count(b"{") != n or b"[" in joined) and is_too_deep(joined, MAX_JSON_DEPTH):
            return None
        return events

    def _decode(self, value: bytes) -> list[tuple[int, RawEvent]] | None:
        """A record's events in one call, or None when the reference path must look at it."""
        if len(value) > self.config.max_payload_bytes or is_too_deep(value, MAX_JSON_DEPTH):
            return None
        try:
            events = _MANY.decode(value) if value.lstrip()[:1] == b"[" else [_ONE.decode(value)]
        except Exception:  # any failure is the reference path's to name
            return None
        return list(enumerate(events))

    def _decode_slowly(
        self, i: int, value: bytes, where: Where, letters: list[Letter], result: BatchResult
    ) -> list[tuple[int, RawEvent]]:
        collector, sink = self._collector, IngestResult()
        collector.outcomes = []
        topic, partition, offset, now_ms = where
        collector.process(sink, value, topic=topic, partition=partition, offset=offset, now_ms=now_ms)
        result.counts.update(sink.counts)
        events = []
        for j, outcome in enumerate(collector.outcomes):
            if isinstance(outcome, DeadLetter):
                letters.append(((i, j), outcome))
            else:
                events.append((j, outcome))
        return events

    def _kind(
        self,
        result: BatchResult,
        letters: list[Letter],
        records: Sequence[Record],
        origin: tuple[np.ndarray, np.ndarray],
        kind: str,
        events: tuple[list[RawEvent], list[tuple[int, int]]],
        now_ms: int,
    ) -> None:
        raws, seqs = events
        try:
            ok, ages = self._rules(kind, raws, now_ms)
        except Exception:  # e.g. an integer beyond int64: every event is judged alone
            ok, ages = np.zeros(len(raws), bool), None
        ref = self.reference
        keep = ok.copy()
        for n in np.flatnonzero(~ok).tolist():  # the doubtful few, judged and named by the reference
            i, j = seqs[n]
            value, topic, partition, offset = records[i]
            where = (topic, partition, offset, now_ms)
            sink = IngestResult()
            try:
                problem = ref.problem(raws[n], now_ms)
            except Exception as exc:  # as the reference path: this event alone
                ref._unprocessable(sink, exc, where)
            else:
                if problem is None:
                    keep[n] = True
                    continue
                ref._dead(sink, problem[0], problem[1], _element(value or b"", j), where)
            letters.extend((seqs[n], letter) for letter in sink.dead)
            result.counts.update(sink.counts)
        if not (keep == ok).all():
            ages = None  # an event the batch rules doubted is valid after all: its band is computed anew
        # (record, element) per kept event; fromiter over C-level maps: np.array of 20,000 tuples took 60 ms
        at = [np.fromiter(map(get, seqs), np.int64, len(seqs))[keep] for get in _RECORD_ELEMENT]
        kept = [r for r, k in zip(raws, keep.tolist(), strict=True) if k]
        self._keep(result, kind, kept, (origin, at), ages, keep)

    def _keep(
        self,
        result: BatchResult,
        kind: str,
        raws: list[RawEvent],
        keys: tuple[tuple[np.ndarray, np.ndarray], list[np.ndarray]],
        ages: np.ndarray | None,
        keep: np.ndarray,
    ) -> None:
        if not raws:
            return
        (record_source, record_offset), (record, element) = keys
        source, offset = record_source[record], record_offset[record]
        ts = _num(raws, "ts_ms", np.int64)
        field_name = _IDENTIFIER[kind]
        persons = self.reference.pseudonym.many(_strs(raws, field_name), ts, field_name)
        head = np.frombuffer(bytes.fromhex("".join(p[:8] for p in persons)), ">u4")
        parts = head % self.config.partitions
        if kind == "sim":
            band_of = ages[keep] if ages is not None else self._bands(raws)
            bands: list[str] | None = [AGE_BANDS[b] for b in band_of.tolist()]
        else:
            bands = None
        for partition in np.unique(parts).tolist():
            idx = np.flatnonzero(parts == partition).tolist()
            block = _Block([raws[i] for i in idx], [persons[i] for i in idx],
                           [bands[i] for i in idx] if bands is not None else None,
                           (source[idx], offset[idx], element[idx]))  # fmt: skip
            result.blocks[(kind, partition)] = block
        result.counts[ACCEPTED] += len(raws)

    def _bands(self, raws: list[RawEvent]) -> np.ndarray:
        ts = _num(raws, "ts_ms", np.int64)
        births = _num(raws, "birth_year", np.int64)
        bands: np.ndarray = np.searchsorted(_BAND_UPPERS, years(ts) - births)
        return bands

    def _rules(self, kind: str, raws: list[RawEvent], now_ms: int) -> tuple[np.ndarray, np.ndarray | None]:
        """A mask of events that pass every rule of `Validator.problem` for sure (False: judge it
        alone), and for SIM events the age-band index of each."""
        cfg = self.config
        v = _num(raws, "v", np.int64)
        ts = _num(raws, "ts_ms", np.int64)
        lat = _num(raws, "lat", np.float64)
        lng = _num(raws, "lng", np.float64)
        box = cfg.bbox
        ok = (v == SCHEMA_VERSION) & (np.abs(ts) < _SAFE_TS_MS)
        ok &= (box.min_lat <= lat) & (lat <= box.max_lat) & (box.min_lng <= lng) & (lng <= box.max_lng)
        ok &= ~(np.abs(np.where(ok, ts, now_ms) - now_ms) / 1000 > cfg.max_skew_s)
        ok &= ids_ok(_strs(raws, "event_id"))
        ages = None
        if kind == "sim":
            sims: list[RawSim] = raws  # type: ignore[assignment]
            ok &= lengths_ok(_strs(sims, "imsi")) & lengths_ok(_strs(sims, "msisdn"))
            ok &= ids_ok(_strs(sims, "tower_id")) & origins_ok(_strs(sims, "origin"))
            age = years(np.where(ok, ts, now_ms)) - _num(sims, "birth_year", np.int64)
            ok &= (age >= 0) & (age <= MAX_AGE_YEARS)
            ages = np.searchsorted(_BAND_UPPERS, age)
        elif kind == "payment":
            pays: list[RawPayment] = raws  # type: ignore[assignment]
            ok &= lengths_ok(_strs(pays, "account")) & origins_ok(_strs(pays, "origin"))
            amount = _num(pays, "amount_cny", np.float64)
            ok &= np.isfinite(amount) & (amount > 0) & (amount <= cfg.max_amount_cny)
            ok &= self._names_ok([(r.category, r.merchant_id) for r in pays], payment_problem)
        else:
            taps: list[RawTransit] = raws  # type: ignore[assignment]
            ok &= lengths_ok(_strs(taps, "card"))
            ok &= self._names_ok([(r.line, r.mode, r.station_id) for r in taps], transit_problem)
        return ok, ages

    def _names_ok(self, keys: list[tuple[str, ...]], check: object) -> np.ndarray:
        """The vocabulary rules once per distinct key (the reference's memo), then a mask per event."""
        vocabulary, known = self.config.vocabulary, self.reference._known
        bad = {k for k in set(keys) if known(k, check, vocabulary, *k) is not None}  # type: ignore[arg-type]
        if not bad:
            return np.ones(len(keys), bool)
        return np.fromiter((k not in bad for k in keys), bool, len(keys))


def _num(raws: Sequence[RawEvent], name: str, dtype: type) -> np.ndarray:
    """A numeric field of every event as an array (map with attrgetter: the loop runs in C)."""
    return np.fromiter(map(attrgetter(name), raws), dtype, len(raws))


def _strs(raws: Sequence[RawEvent], name: str) -> list[str]:
    return list(map(attrgetter(name), raws))


def _element(value: bytes, j: int) -> bytes:
    """The j-th element of a record as the reference path sees it (the record itself if not an array)."""
    if value.lstrip()[:1] != b"[":
        return value
    return bytes(_ELEMENTS.decode(value)[j])
