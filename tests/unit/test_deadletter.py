"""Dead letters carry no personal data: formatted identifiers, free text and echoed values included."""

from __future__ import annotations

import re

import msgspec
import pytest

from cityscreen.city import load_city
from cityscreen.deadletter import mask_digits, safe_detail, safe_preview
from cityscreen.events import INGEST_SIM_TOPIC
from cityscreen.ingest import IngestConfig, IngestResult, Validator
from tests.support.factories import raw_fields

# A fixed clock: the scanner looks for six digits of an identifier anywhere in a dead letter, and the
# letter's own times (taken from the wall clock) matched one by chance in a CI run.
NOW_MS = 1_796_400_000_000
# Identifiers as people and forms write them: with spaces, dashes, dots, plus signs.
FORMATTED_IDS = (
    "46001 7777 0002",
    "SZT-5555-0001",
    "+86 138-0000-1111",
    "6217.3333.1234.5678",
    "(0755) 8888 1234",
)


def leaks(text: str, identifiers: tuple[str, ...] = FORMATTED_IDS) -> list[str]:
    """Identifiers whose digits appear in `text` in order, whatever separators people write between
    them (spaces, dashes, dots, plus signs, brackets): not across JSON fields, whose numbers are apart."""
    digits_only = re.sub(r"[\s\-.+()/]", "", text)
    found = []
    for ident in identifiers:
        digits = re.sub(r"[^0-9]", "", ident)
        # any 6 consecutive digits of the identifier: a partial number is still a lead
        if any(digits[i : i + 6] in digits_only for i in range(len(digits) - 5)):
            found.append(ident)
    return found


def test_the_scanner_can_fail() -> None:
    assert leaks('{"card": "SZT-5555-0001"}') == ["SZT-5555-0001"]
    assert leaks("call +86 138 0000 1111 now") == ["+86 138-0000-1111"]
    assert leaks('{"ts_ms": 1, "lat": 22.5}') == []


def sim(**fields: object) -> dict[str, object]:
    # the identifiers are the test's own (the scanner looks for them); the preview test names the event id
    own = {"event_id": "ev-1", "ts_ms": NOW_MS, "imsi": "460015555000100", "msisdn": "8613800001111"}
    return raw_fields("sim", **(own | fields))


def config() -> IngestConfig:
    return IngestConfig(
        bbox=load_city().bbox, secret="unit-test-secret-0123456789", rotation_s=86_400, max_skew_s=3600,
        max_payload_bytes=65_536, partitions=4,
    )  # fmt: skip


# The outside tester's cases: identifiers under their own keys, under wrong keys, in free text, as the
# rejected value of a validated field, and in records over 2 KB (which used to get a raw-bytes preview).
FREE_TEXT = "customer 46001 7777 0002 paid with SZT-5555-0001, call +86 138-0000-1111"
CASES = {
    "own keys": sim(imsi="46001 7777 0002", msisdn="+86 138-0000-1111", lat="north"),
    "own keys, over 2 KB": sim(imsi="46001 7777 0002", card="SZT-5555-0001", lat="x", pad="y" * 3000),
    "wrong key": sim(imsi=..., subscriber="46001 7777 0002"),
    "free text": sim(note=FREE_TEXT, tower_id=FREE_TEXT, lat="x"),
    "free text, over 2 KB": sim(note=FREE_TEXT * 40, v=2),
    "rejected value": sim(origin="46001 7777 0002"),
    "rejected enum value": sim(gender="SZT-5555-0001"),
    "rejected tag": sim(kind="6217.3333.1234.5678"),
    "identifier as event id": sim(event_id="SZT-5555-0001", lat=40.0),
    "formatted phone in tower": sim(tower_id="(0755) 8888 1234", ts_ms=0),
}


@pytest.mark.parametrize("case", CASES)
def test_dead_letters_carry_no_formatted_identifier(case: str) -> None:
    record = {k: v for k, v in CASES[case].items() if v is not ...}
    result = IngestResult()
    value = msgspec.json.encode(record)
    Validator(config()).process(result, value, topic=INGEST_SIM_TOPIC, partition=0, offset=7, now_ms=NOW_MS)
    assert len(result.dead) == 1
    text = msgspec.json.encode(result.dead).decode()
    assert leaks(text) == []
    assert "customer" not in text and "subscriber" not in text  # free text and unknown keys dropped


def test_a_preview_shows_types_of_personal_fields_and_counts_unknown_ones() -> None:
    preview = msgspec.json.decode(safe_preview(msgspec.json.encode(sim(note="hello", extra=[1]))))
    assert preview == {
        "kind": "sim", "v": 1, "event_id": "ev-1", "ts_ms": "<int>", "imsi": "***", "msisdn": "***",
        "tower_id": "T1", "lat": "<float>", "lng": "<float>", "gender": "<str>", "birth_year": "<int>",
        "origin": "<str>", "unknown_fields": 2,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("payload", "preview"),
    [
        (b"", "<empty>"),
        (b"\x00\xff 460001234567890", "<not JSON, or too large to parse: 18 bytes>"),
        (b'["46001 7777 0002"]', "<JSON <array>: 19 bytes>"),
        (b'{"kind": "sim", "line": "\\u202e\\u202eL1"}', '{"kind":"sim","line":"??L1"}'),
        (b'{"station_id": "' + b"x" * 900 + b'"}', '{"station_id":"<str of 900 chars>"}'),
    ],
)
def test_previews_of_odd_payloads(payload: bytes, preview: str) -> None:
    assert safe_preview(payload) == preview


def test_mask_digits_masks_formatted_runs_only() -> None:
    assert mask_digits("T12-34 L1-05 BUS-2501-11650") == "T12-34 L1-05 BUS-***"
    assert [mask_digits(i) for i in FORMATTED_IDS] == ["***", "SZT-***", "***", "***", "(***"]


def test_a_detail_names_the_rule_not_the_quoted_value() -> None:
    assert safe_detail("Invalid enum value 'SZT-5555-0001' - at `$.gender`") == (
        "Invalid enum value <value> - at `$.gender`"
    )


def test_every_dead_letter_reason_is_documented() -> None:
    from pathlib import Path

    from cityscreen.ingest import REASONS

    root = Path(__file__).resolve().parents[2]
    for doc in ("README.md", "docs/privacy.md"):
        text = (root / doc).read_text(encoding="utf-8")
        assert [r for r in REASONS if f"`{r}`" not in text] == [], f"{doc}: list the new reason there"
