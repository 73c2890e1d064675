"""The ingest edge's pure logic: every bad-input class is dead-lettered with its reason, neighbours pass."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import msgspec
import pytest
from pydantic import ValidationError

from cityscreen.city import load_city
from cityscreen.deadletter import safe_preview
from cityscreen.errors import CityScreenError
from cityscreen.events import (
    INGEST_PAYMENT_TOPIC,
    Kind,
    RawEvent,
    SimEvent,
    decode_clean_many,
    encode,
    encode_many,
    partition_for,
)
from cityscreen.ingest import (
    IngestConfig,
    IngestResult,
    Validator,
    clean_event,
    require_secret,
)
from cityscreen.pseudonym import Pseudonymizer, pseudonymize
from cityscreen.settings import Settings
from tests.support.factories import raw_event

NOW_MS = int(time.time() * 1000)
SECRET = "unit-test-secret-0123456789"


@pytest.fixture
def config() -> IngestConfig:
    return IngestConfig(
        bbox=load_city().bbox, secret=SECRET, rotation_s=86_400, max_skew_s=3600, max_payload_bytes=65_536,
        partitions=4,
    )  # fmt: skip


# its events are the RawSim, RawPayment or RawTransit their kind names (Any: the tests read their fields)
MakeEvent = Callable[..., Any]


@pytest.fixture
def make_event() -> MakeEvent:
    def make(kind: Kind = "sim", **overrides: object) -> Any:
        return raw_event(kind, **({"ts_ms": NOW_MS} | overrides))

    return make


def run(config: IngestConfig, *records: bytes) -> IngestResult:
    result = IngestResult()
    validator = Validator(config)
    for offset, value in enumerate(records):
        validator.process(
            result, value, topic=INGEST_PAYMENT_TOPIC, partition=2, offset=offset, now_ms=NOW_MS
        )
    return result


def as_dict(event: RawEvent) -> dict[str, Any]:
    fields: dict[str, Any] = msgspec.json.decode(encode(event))
    return fields


def with_fields(event: RawEvent, **changes: object) -> bytes:
    d = as_dict(event)
    for key, value in changes.items():
        if value is ...:
            d.pop(key)
        else:
            d[key] = value
    return msgspec.json.encode(d)


def bad_element(make_event: Callable[..., RawEvent], reason: str) -> bytes:
    """One element of each bad-input class, as it would sit inside a producer's JSON array."""
    sim = make_event("sim")
    return {
        "invalid_schema:type": lambda: with_fields(sim, lat="north"),
        "invalid_schema:missing": lambda: with_fields(sim, imsi=...),
        "invalid_schema:kind": lambda: with_fields(sim, kind="telepathy"),
        "unknown_version": lambda: with_fields(sim, v=2, brand_new_field=1),
        "out_of_city": lambda: encode(make_event("transit", lat=39.9, lng=116.4)),
        "ts_skew:past": lambda: encode(make_event("payment", ts_ms=NOW_MS - 30 * 86_400_000)),
        "ts_skew:future": lambda: encode(make_event("sim", ts_ms=NOW_MS + 2 * 3_600_000)),
        "unknown_origin": lambda: encode(make_event("sim", origin="ATLANTIS")),
        "implausible_birth_year": lambda: encode(make_event("sim", birth_year=1700)),
        "invalid_value": lambda: encode(make_event("payment", amount_cny=-5.0)),
    }[reason]()


ELEMENT_REASONS = [
    "invalid_schema:type", "invalid_schema:missing", "invalid_schema:kind", "unknown_version", "out_of_city",
    "ts_skew:past", "ts_skew:future", "unknown_origin", "implausible_birth_year", "invalid_value",
]  # fmt: skip


@pytest.mark.parametrize("case", ELEMENT_REASONS)
def test_bad_element_is_dead_lettered_alone(config: IngestConfig, make_event: MakeEvent, case: str) -> None:
    good = [make_event(kind) for kind in ("sim", "payment", "transit", "sim")]
    bad = bad_element(make_event, case)
    record = (
        b"[" + b",".join([encode(good[0]), encode(good[1]), bad, encode(good[2]), encode(good[3])]) + b"]"
    )
    result = run(config, record)
    reason = case.split(":")[0]
    assert [d.reason for d in result.dead] == [reason]
    assert result.counts == {"ingest.accepted": 4, f"deadletter.{reason}": 1}
    assert sorted(e.event_id for evs in result.clean.values() for e in evs) == sorted(
        g.event_id for g in good
    )
    letter = result.dead[0]
    assert (letter.source_topic, letter.partition, letter.offset) == (INGEST_PAYMENT_TOPIC, 2, 0)
    assert letter.detail


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"\x00\x9f\xff 460001234567890 garbage", "malformed"),
        (b'[{"kind": "sim", "v": 1,', "malformed"),
        (b"", "malformed"),
        (b"[" + b'"x",' * 20_000 + b'"x"]', "oversize"),
    ],
)
def test_bad_record_is_dead_lettered_and_neighbour_records_pass(
    config: IngestConfig, make_event: MakeEvent, value: bytes, reason: str
) -> None:
    before, after = make_event("sim"), make_event("transit")
    result = run(config, encode(before), value, encode_many([after]))
    assert [(d.reason, d.offset) for d in result.dead] == [(reason, 1)]
    assert result.counts == {"ingest.accepted": 2, f"deadletter.{reason}": 1}


def test_dead_letters_carry_no_raw_identifier(config: IngestConfig, make_event: MakeEvent) -> None:
    sim, pay = make_event("sim", origin="XX"), make_event("payment", amount_cny=0.0)
    wrong_key = with_fields(make_event("transit"), card=..., kard="SZT123456789", lat="x")
    garbage = b"\x01imsi=460001112223334 msisdn 8613800001111"
    result = run(config, encode(sim), encode(pay), wrong_key, garbage)
    assert len(result.dead) == 4
    text = msgspec.json.encode(result.dead).decode()
    for raw_id in (sim.imsi, sim.msisdn, pay.account, "123456789", "460001112223334", "8613800001111"):
        assert raw_id not in text


def test_the_preview_keeps_the_shape_of_parseable_payloads(make_event: MakeEvent) -> None:
    sim = make_event("sim")
    preview = msgspec.json.decode(safe_preview(encode(sim)))
    assert preview["imsi"] == preview["msisdn"] == "***"
    assert preview["tower_id"] == "T1" and preview["origin"] == "<str>" and preview["birth_year"] == "<int>"


def test_clean_events_are_grouped_by_person_partition(config: IngestConfig, make_event: MakeEvent) -> None:
    events = [make_event(kind) for kind in ("sim", "payment", "transit") for _ in range(30)]
    result = run(config, encode_many(events))
    assert sum(len(v) for v in result.clean.values()) == 90
    for (kind, partition), group in result.clean.items():
        assert all(e.__struct_config__.tag == kind for e in group)
        assert all(partition_for(e.person, config.partitions) == partition for e in group)


def test_clean_events_hold_pseudonyms_and_age_bands_only(config: IngestConfig, make_event: MakeEvent) -> None:
    events = [make_event("sim", birth_year=2000), make_event("payment"), make_event("transit")]
    result = run(config, encode_many(events))
    clean = {e.__struct_config__.tag: e for evs in result.clean.values() for e in evs}
    wire = encode_many(list(clean.values())).decode()
    for raw_id in (events[0].imsi, events[0].msisdn, events[1].account, events[2].card):
        assert raw_id not in wire
    assert "birth_year" not in wire
    sim = clean["sim"]
    assert isinstance(sim, SimEvent)
    assert sim.age_band == ("25-34" if time.gmtime().tm_year - 2000 > 24 else "18-24")
    assert clean["sim"].person == pseudonymize(
        events[0].imsi, ts_ms=NOW_MS, secret=SECRET, rotation_s=86_400, domain="imsi"
    )
    assert decode_clean_many(wire.encode())  # valid clean schema


def test_pseudonymizer_matches_the_contract_and_rotates() -> None:
    fast = Pseudonymizer(SECRET, 3600)
    for ts in (0, 3_599_999, 3_600_000, NOW_MS):
        expected = pseudonymize("460001234567890", ts_ms=ts, secret=SECRET, rotation_s=3600, domain="imsi")
        assert fast("460001234567890", ts, "imsi") == expected
        assert fast("460001234567890", ts, "imsi") == expected  # memoised path
    assert fast("x", 0, "imsi") != fast("x", 3_600_000, "imsi")  # next period: unlinkable
    assert fast("x", 0, "imsi") != fast("x", 0, "card")  # domains are separate namespaces
    assert Pseudonymizer("another-secret-abcdefgh", 3600)("x", 0, "imsi") != fast("x", 0, "imsi")


def test_library_clean_event_matches_the_edge(config: IngestConfig, make_event: MakeEvent) -> None:
    raw = make_event("transit")
    result = run(config, encode(raw))
    (edge,) = [e for evs in result.clean.values() for e in evs]
    assert clean_event(raw, secret=SECRET, rotation_s=86_400) == edge


@pytest.mark.parametrize("secret", ["", "change-me", "development-only", "short"])
def test_production_refuses_placeholder_secret(secret: str) -> None:
    with pytest.raises(ValidationError, match="CITY_PSEUDONYM_SECRET"):
        Settings(mode="production", pseudonym_secret=secret, gateway={"operator_tokens": ["tok-" + "x" * 20]})
    # the edge checks again, even if a settings object was built without validation
    unchecked = Settings.model_construct(mode="production", pseudonym_secret=secret)
    with pytest.raises(CityScreenError, match="placeholder"):
        require_secret(unchecked)


@pytest.mark.parametrize(
    "privacy",
    [{"dp_enabled": True, "stock_noise": False}, {"stock_noise": True}, {}],
    ids=["dp", "stock-noise", "default"],
)
def test_production_refuses_the_public_noise_seed_wherever_noise_is_drawn(privacy: dict[str, object]) -> None:
    def production(privacy: dict[str, object]) -> Settings:
        tokens = {"operator_tokens": ["tok-" + "x" * 20]}
        return Settings(mode="production", pseudonym_secret="a" * 32, gateway=tokens, privacy=privacy)

    production({"stock_noise": False})  # exact threshold mode draws no noise: the seed is not used
    with pytest.raises(ValidationError, match="CITY_PRIVACY__DP_SEED"):
        production(privacy)
    production({**privacy, "dp_seed": "b" * 32})


def test_development_and_real_secrets_are_accepted() -> None:
    require_secret(Settings())
    require_secret(Settings.model_construct(mode="production", pseudonym_secret="a" * 32))


@pytest.mark.parametrize(
    "value",
    [
        b"[" * 5000 + b"]" * 5000,  # the outside tester's 10 KB record: RecursionError in msgspec
        b'{"kind": "sim", "note": ' + b"[" * 5000 + b"]" * 5000 + b"}",  # deep under an unknown field
        b'[{"kind": "transit"}, ' + b"{" * 3000 + b"}" * 3000 + b"]",
    ],
)
def test_a_deeply_nested_record_is_dead_lettered_alone(
    config: IngestConfig, make_event: MakeEvent, value: bytes
) -> None:
    before, after = make_event("sim"), make_event("payment")
    result = run(config, encode(before), value, encode_many([after]))
    assert [(d.reason, d.offset) for d in result.dead] == [("too_deep", 1)]
    assert result.counts == {"ingest.accepted": 2, "deadletter.too_deep": 1}


def test_any_failure_on_one_element_dead_letters_that_element_alone(
    config: IngestConfig, make_event: MakeEvent, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A RecursionError / MemoryError-class failure the depth bound does not foresee loses nothing else."""
    events = [make_event("sim"), make_event("payment"), make_event("transit")]
    validator = Validator(config)
    clean = validator.clean

    def flaky(raw: RawEvent) -> object:
        if raw.event_id == events[1].event_id:
            raise MemoryError("out of memory")
        return clean(raw)

    monkeypatch.setattr(validator, "clean", flaky)
    result = IngestResult()
    for offset, value in enumerate([encode_many(events), encode(events[1])]):
        validator.process(
            result, value, topic=INGEST_PAYMENT_TOPIC, partition=2, offset=offset, now_ms=NOW_MS
        )
    assert [(d.reason, d.offset) for d in result.dead] == [("unprocessable", 0), ("unprocessable", 1)]
    assert "MemoryError" in result.dead[0].detail
    assert sorted(e.event_id for evs in result.clean.values() for e in evs) == sorted(
        e.event_id for e in (events[0], events[2])
    )


def test_a_too_deep_record_is_previewed_by_size_only(config: IngestConfig) -> None:
    (letter,) = run(config, b"[" * 5000 + b"]" * 5000).dead
    assert letter.payload_preview == "<10000 bytes, not decoded>"
