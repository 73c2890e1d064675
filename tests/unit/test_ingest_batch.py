"""The ingest edge's batch path against the per-event reference (`cityscreen.ingest.Validator`): on a large
random mix of good and bad records, the same clean batches byte for byte, the same dead letters in the
same order, the same counters."""

from __future__ import annotations

import random
from datetime import datetime

import msgspec
import numpy as np
import pytest

from cityscreen.city import load_city
from cityscreen.clean_batch import encode_batch
from cityscreen.deadletter import DeadLetter
from cityscreen.events import INGEST_SIM_TOPIC, RawEvent, RawPayment, RawSim, encode, encode_many
from cityscreen.ingest import MAX_JSON_DEPTH, IngestConfig, IngestResult, Validator
from cityscreen.ingest_batch import RECORD_EVENTS, BatchResult, BatchValidator
from cityscreen.pseudonym import Pseudonymizer, pseudonymize
from services.generator.columnar.engine import Engine

CITY = load_city()
START_MS = int(datetime.fromisoformat("2026-11-17T08:00:00+08:00").timestamp() * 1000)
NOW_MS = START_MS + 120_000  # a fixed clock: the skew rule judges the same on any date
RES = 9


def config(partitions: int = 4) -> IngestConfig:
    return IngestConfig(
        bbox=CITY.bbox, secret="batch-test-secret-0123456789", rotation_s=3600, max_skew_s=900,
        max_payload_bytes=12_000, partitions=partitions, rotation_offset_s=0,
    )  # fmt: skip


def mutate(event: RawEvent, rng: random.Random) -> bytes:
    """One bad (or oddly valid) event, as JSON: every rule of the validator gets its turn."""
    fields = msgspec.to_builtins(event)
    choice = rng.randrange(22)
    if choice == 0:
        fields["lat"] = 40.0
    elif choice == 1:
        fields["ts_ms"] = NOW_MS + rng.choice([-1, 1]) * rng.randrange(900_001, 10**9)
    elif choice == 2:
        fields["event_id"] = rng.choice(["", "a b", "x" * 65, "é", "ok:id-" + "9" * 58])
    elif choice == 3:
        fields["v"] = rng.choice([0, 2, 10**30])
    elif choice == 4:
        fields.pop("lat")
    elif choice == 5:
        fields["lng"] = rng.choice(["114.0", None, float("nan")])
    elif choice == 6:
        fields["origin"] = rng.choice(["XX", "", "GD"])
    elif choice == 7 and isinstance(event, RawSim):
        fields["birth_year"] = rng.choice([1800, 2030, 10**20, 1915, 2026])
    elif choice == 7:
        fields["kind"] = "unknown"
    elif choice == 8 and isinstance(event, RawPayment):
        fields["amount_cny"] = rng.choice([-1.0, 0.0, 1e9, float("inf"), 100_000.0])
    elif choice == 8:
        fields["unknown_field"] = "free text 13800001111"
    elif choice == 9:
        key = {"sim": "imsi", "payment": "account", "transit": "card"}[fields["kind"]]
        fields[key] = rng.choice(["", "9" * 65, "4600" + "1" * 60])
    elif choice == 10 and fields["kind"] == "sim":
        fields["tower_id"] = rng.choice(["", "T/1", "T" * 65])
    elif choice == 10 and fields["kind"] == "payment":
        fields["merchant_id"] = rng.choice(["nowhere-1", "LOC-1-2-foo", "m" * 70])
        fields["category"] = rng.choice(["food", "weapons"])
    elif choice == 10:
        fields["line"] = rng.choice(["L99", "bus-nowhere", "shuttle-L1"])
        fields["station_id"] = rng.choice(["BUS-1-2", "nowhere", "s" * 70])
    elif choice == 11:
        fields["ts_ms"] = rng.choice([-(2**62), 2**62, 1.5])
    elif choice == 12:
        fields["lat"] = rng.choice([CITY.bbox.min_lat, CITY.bbox.max_lat, -0.0])
    elif choice == 19:
        fields["nested"] = [[[[[[[[[1]]]]]]]]]  # a valid event but for a field nested too deep
    if choice == 13:
        return b"\x00\xffnot json 460001234567890"
    if choice == 14:
        return b"[" * 50 + b"]" * 50
    if choice == 15:
        return b""
    if choice == 16:
        return encode(event)[:-3]
    if choice == 17:
        return b'{"kind": "sim"} trailing'
    if choice == 18:
        return b"x" * 13_000
    return msgspec.json.encode(fields)


def records(n_events: int, seed: int, arrays: float = 0.5) -> list[bytes]:
    """Generator events (good) with one in eight mutated, one event per record or arrays of up to 40,
    some arrays holding bad elements."""
    rng = random.Random(seed)
    events = list(Engine(CITY, 60_000, seed).events(START_MS, 600))[:n_events]
    out: list[bytes] = []
    i = 0
    while i < len(events):
        if rng.random() >= arrays:
            out.append(mutate(events[i], rng) if rng.random() < 0.125 else encode(events[i]))
            i += 1
            continue
        k = rng.randrange(0, 40)
        chunk = events[i : i + k]
        i += max(k, 1)
        if rng.random() < 0.3:
            parts = [mutate(e, rng) if rng.random() < 0.2 else encode(e) for e in chunk]
            out.append(b"[" + b",".join(parts) + b"]")
        else:
            out.append(encode_many(chunk))
    return out


# clean batches per (kind, partition), dead letters, counters
Outcome = tuple[dict[tuple[str, int], list[bytes]], list[DeadLetter], dict[str, int]]


def reference(cfg: IngestConfig, values: list[bytes], batch: int) -> Outcome:
    validator = Validator(cfg)
    buckets: dict[tuple[str, int], list[bytes]] = {}
    dead: list[DeadLetter] = []
    counts: dict[str, int] = {}
    for lo in range(0, len(values), batch):
        result = IngestResult()
        for offset in range(lo, min(lo + batch, len(values))):
            validator.process(
                result, values[offset], topic=INGEST_SIM_TOPIC, partition=0, offset=offset, now_ms=NOW_MS
            )
        for key, events in result.clean.items():
            for i in range(0, len(events), RECORD_EVENTS):
                buckets.setdefault(key, []).append(encode_batch(key[0], events[i : i + RECORD_EVENTS], RES))
        dead.extend(result.dead)
        for k, v in result.counts.items():
            counts[k] = counts.get(k, 0) + v
    return buckets, dead, counts


def batched(cfg: IngestConfig, values: list[bytes], batch: int) -> Outcome:
    validator = BatchValidator(cfg)
    buckets: dict[tuple[str, int], list[bytes]] = {}
    dead: list[DeadLetter] = []
    counts: dict[str, int] = {}
    for lo in range(0, len(values), batch):
        chunk = [(values[o], INGEST_SIM_TOPIC, 0, o) for o in range(lo, min(lo + batch, len(values)))]
        result: BatchResult = validator.run(chunk, NOW_MS)
        for kind, partition, value in result.records(RES, provenance=False):
            buckets.setdefault((kind, partition), []).append(value)
        dead.extend(result.dead)
        for k, v in result.counts.items():
            counts[k] = counts.get(k, 0) + v
    return buckets, dead, counts


@pytest.mark.parametrize(
    ("seed", "batch", "arrays"),
    [(1, 1, 0.5), (2, 500, 0.5), (3, 10_000, 0.5), (4, 300, 0.0), (5, 10_000, 0.0)],
)
def test_batch_path_equals_the_reference_on_random_input(seed: int, batch: int, arrays: float) -> None:
    """arrays=0: one event per record, as external producers send them (the batch decodes them in one
    call unless a record is bad)."""
    values = records(30_000 if batch > 1 else 5_000, seed, arrays)
    cfg = config()
    want_clean, want_dead, want_counts = reference(cfg, values, batch)
    got_clean, got_dead, got_counts = batched(cfg, values, batch)
    assert sum(want_counts.get(k, 0) for k in want_counts if k.startswith("deadletter.")) > 100
    assert want_counts["ingest.accepted"] > 1000
    assert got_counts == want_counts
    assert got_dead == want_dead
    assert got_clean.keys() == want_clean.keys()
    for key in want_clean:
        assert got_clean[key] == want_clean[key], key


def test_clean_events_of_a_batch_result_are_the_reference_ones() -> None:
    values = records(3000, 9)
    cfg = config()
    result = IngestResult()
    ref = Validator(cfg)
    for offset, value in enumerate(values):
        ref.process(result, value, topic=INGEST_SIM_TOPIC, partition=0, offset=offset, now_ms=NOW_MS)
    got = BatchValidator(cfg).run([(v, INGEST_SIM_TOPIC, 0, o) for o, v in enumerate(values)], NOW_MS)
    assert got.clean == result.clean


def test_pseudonyms_of_a_batch_match_the_contract_across_periods() -> None:
    fast = Pseudonymizer("batch-test-secret-0123456789", 3600, memo_size=5, offset_s=600)
    ids = [f"46000{i % 7}" for i in range(20)] + ["", "é✓", "x" * 300]
    ts = np.array([i * 1_000_003 for i in range(len(ids))], np.int64)  # about 6 periods
    want = [
        pseudonymize(i, ts_ms=int(t), secret="batch-test-secret-0123456789", rotation_s=3600,
                     domain="imsi", offset_s=600)
        for i, t in zip(ids, ts.tolist(), strict=True)
    ]  # fmt: skip
    assert fast.many(ids, ts, "imsi") == want
    assert fast.many(ids, ts, "imsi") == want  # from the (bounded) memo


def _odd_records() -> dict[str, bytes]:
    good = encode(next(iter(Engine(CITY, 1_000, 9).events(START_MS, 60))))
    return {
        "two objects on two lines": good + b"\n" + good,
        "two objects on one line": good + good,
        "a trailing newline": good + b"\n",
        "spaces around": b"  " + good + b"  ",
        "an empty record": b"",
        "an opening brace alone": b"{",
        "a closing brace alone": b"}",
        "an object nested too deep": good[:-1]
        + b',"x":'
        + b'{"y":' * MAX_JSON_DEPTH
        + b"1"
        + b"}" * MAX_JSON_DEPTH
        + b"}",
        "an array nested too deep": good[:-1]
        + b',"x":'
        + b"[" * MAX_JSON_DEPTH
        + b"1"
        + b"]" * MAX_JSON_DEPTH
        + b"}",
        "objects nested as deep as allowed": good[:-1]
        + b',"x":'
        + b'{"y":' * (MAX_JSON_DEPTH - 1)
        + b"1"
        + b"}" * MAX_JSON_DEPTH,
        "brackets inside a string": good[:-1] + b',"note":"[{[{ }]}]"}',
        "a brace inside a string": good[:-1] + b',"note":"{"}',
        "an array of one event": b"[" + good + b"]",
        "a scalar": b"17",
    }


def _odd_batches() -> dict[str, list[bytes]]:
    odd = _odd_records()
    batches = {case: [record] for case, record in odd.items()}
    # as many JSON lines as records, but not one per record: only the newline check can tell
    batches["two lines in one record, and an empty one"] = [odd["two objects on two lines"], b""]
    batches["two lines in one record, and a blank one"] = [odd["two objects on two lines"], b"  "]
    return batches


@pytest.mark.parametrize("case", sorted(_odd_batches()))
def test_odd_records_among_one_event_records_are_judged_as_the_reference_does(case: str) -> None:
    """The one-call decoding of one-event records checks the batch as a whole (newlines, braces,
    brackets): an odd record anywhere must send the batch down the reference path, or pass it when the
    reference accepts it, with the same events keyed to the same records."""
    good = [encode(e) for e in list(Engine(CITY, 2_000, 3).events(START_MS, 120))[:60]]
    for at in (0, 30, 60):
        values = [*good[:at], *_odd_batches()[case], *good[at:]]
        cfg = config()
        assert batched(cfg, values, len(values)) == reference(cfg, values, len(values)), at
