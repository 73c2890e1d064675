"""Closed vocabularies at the ingest edge: the outside tester's open strings are dead-lettered by name,
and every id form the generator makes is accepted by rule (pattern + city model), not by listing."""

from __future__ import annotations

import time

import msgspec
import pytest

from cityscreen.city import load_city
from cityscreen.events import INGEST_PAYMENT_TOPIC, RawPayment, RawTransit
from cityscreen.ingest import IngestConfig, IngestResult, Validator
from cityscreen.vocabulary import Vocabulary, is_id
from tests.support.factories import raw_event

CITY = load_city()
VOCAB = Vocabulary.of_city(CITY)
NOW_MS = int(time.time() * 1000)
RLM = "\u200f"


def transit(**fields: object) -> RawTransit:
    return raw_event("transit", ts_ms=NOW_MS, **fields)


def payment(**fields: object) -> RawPayment:
    return raw_event("payment", ts_ms=NOW_MS, **fields)


def rejected(event: RawTransit | RawPayment) -> list[tuple[str, str]]:
    config = IngestConfig(bbox=CITY.bbox, secret="unit-test-secret-0123456789", rotation_s=86_400,
                          max_skew_s=3600, max_payload_bytes=2_000_000, partitions=4)  # fmt: skip
    result = IngestResult()
    value = msgspec.json.encode(event)
    Validator(config).process(result, value, topic=INGEST_PAYMENT_TOPIC, partition=0, offset=0, now_ms=NOW_MS)
    return [(d.reason, d.detail) for d in result.dead]


# The outside tester's findings, then neighbours of the rules.
REFUSED = [
    (payment(category="weapons"), "unknown_category"),
    (transit(line=RLM * 100), "malformed_id"),
    (transit(line=RLM * 10), "unknown_line"),
    (transit(station_id="S" * 900_000), "malformed_id"),
    (payment(amount_cny=1e300), "implausible_amount"),
    (payment(amount_cny=100_000.01), "implausible_amount"),
    (transit(line="B-M299"), "unknown_line"),  # a bus line with mode metro
    (transit(line="L1", mode="bus"), "unknown_line"),
    (transit(line="bus-atlantis", mode="bus"), "unknown_line"),
    (transit(line="shuttle-L99", mode="bus"), "unknown_line"),
    (transit(station_id="BUS-12-x"), "unknown_station"),
    (transit(station_id="L1-99"), "unknown_station"),
    (payment(merchant_id="weapons-01"), "unknown_merchant"),
    (payment(merchant_id="LOC-1-2-xyz"), "unknown_merchant"),
    (payment(event_id="ev 1; drop"), "malformed_id"),
    (payment(account="6" * 65), "malformed_id"),
]


@pytest.mark.parametrize(("event", "reason"), REFUSED, ids=[f"{r}-{i}" for i, (_, r) in enumerate(REFUSED)])
def test_open_strings_and_amounts_are_dead_lettered_with_a_named_reason(
    event: RawTransit | RawPayment, reason: str
) -> None:
    ((got, detail),) = rejected(event)
    assert got == reason
    assert RLM not in detail and "weapons" not in detail and len(detail) <= 200  # the rule, not the value


ACCEPTED = [
    transit(),
    transit(line="B-M299", mode="bus", station_id="B-M299-03"),
    transit(line="bus-futian", mode="bus", station_id="BUS-2501-11650"),
    transit(line="bus-local", mode="bus", station_id="BUS-2501-11650"),
    transit(line="shuttle-L1", mode="bus", station_id="L1-04-shuttle"),
    payment(merchant_id="LOC-7512-38017-gro", category="groceries"),
    payment(merchant_id="universiade-stadium-03", category="entertainment"),
    payment(amount_cny=100_000.0),
]


@pytest.mark.parametrize("event", ACCEPTED)
def test_the_city_models_names_and_the_generators_rules_pass(event: RawTransit | RawPayment) -> None:
    assert rejected(event) == []


def test_ids_are_short_and_plain() -> None:
    assert is_id("3f2a9c01b7de44aa12cd90ef") and is_id("T3767-19000") and is_id("e" * 64)
    assert not is_id("") and not is_id("e" * 65) and not is_id("T1\u202e") and not is_id("a b")


def test_one_validator_gives_the_same_verdicts_from_its_memo() -> None:
    """The per-name memo: a second pass over the same names gives the first pass's reasons."""
    config = IngestConfig(bbox=CITY.bbox, secret="unit-test-secret-0123456789", rotation_s=86_400,
                          max_skew_s=3600, max_payload_bytes=2_000_000, partitions=4)  # fmt: skip
    validator = Validator(config)
    events = [event for event, _ in REFUSED] + ACCEPTED
    passes = []
    for _ in range(2):
        result = IngestResult()
        for offset, event in enumerate(events):
            value = msgspec.json.encode(event)
            validator.process(result, value, topic=INGEST_PAYMENT_TOPIC, partition=0, offset=offset,
                              now_ms=NOW_MS)  # fmt: skip
        passes.append([(d.offset, d.reason) for d in result.dead])
    assert passes[0] == passes[1] == [(i, reason) for i, (_, reason) in enumerate(REFUSED)]
