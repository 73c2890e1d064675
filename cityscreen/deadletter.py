"""Dead letters: what a rejected record may say about itself without carrying personal data.

A preview is built from a parse, never from raw bytes: a JSON object keeps its known descriptive fields
(kind, version, event id, tower / merchant / station / line ids, category, mode, tap), each shortened
and with digit runs masked even when written with spaces, dashes, dots or plus signs ("46001 5555 0001",
"SZT-5555-0001", "+86 138 0000 1111"). Identifier fields are dropped. Demographics, positions, times
and amounts show only their JSON type, which is what an operator needs to fix a type error. Unknown
fields, which may hold free text, are counted, never shown. Anything that is not a small, shallow JSON
object shows only its size. The `detail` names the field and the rule, not the value.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from cityscreen.events import RAW_IDENTIFIER_FIELDS

PREVIEW_CHARS = 512
PREVIEW_PARSE_BYTES = 4096  # larger payloads are not parsed for a preview: their size is the preview
SHOWN_CHARS = 64  # a shown string longer than this is replaced by its length
# Fields whose values say what the producer sent, not who the person is (when masked and shortened).
SHOWN_FIELDS = frozenset(
    ("kind", "v", "event_id", "tower_id", "merchant_id", "category", "station_id", "line", "mode", "tap")
)
# Fields shown by JSON type only: a person's attributes, or where and when they were.
TYPED_FIELDS = frozenset(("ts_ms", "lat", "lng", "gender", "birth_year", "origin", "amount_cny"))
DROPPED_FIELDS = frozenset(RAW_IDENTIFIER_FIELDS)
MASK = "***"
# Six or more digits, possibly split by spaces, dashes, dots, slashes, parentheses or plus signs: an
# IMSI, MSISDN, card or account number as a person or a form would write it.
_FORMATTED_DIGITS = re.compile(r"\+?\d(?:[\s\-./()+]*\d){5,}")
# What a shown string may keep: letters, digits and a few separators; anything else (controls,
# right-to-left marks, quotes) is replaced, so a preview cannot reorder or fake the text around it.
_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9._:\-]")
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_ANY = msgspec.json.Decoder()
_ENCODER = msgspec.json.Encoder()


class DeadLetter(msgspec.Struct, kw_only=True):
    """What `city.deadletter.v1` carries: never a raw identifier (see `safe_preview`)."""

    reason: str
    detail: str  # the field and the rule it broke (see `safe_detail`), never the value
    source_topic: str
    partition: int
    offset: int
    ingest_ts_ms: int
    payload_preview: str


def mask_digits(text: str) -> str:
    """`text` with every run of 6+ digits masked, separators between the digits included."""
    return _FORMATTED_DIGITS.sub(MASK, text)


def safe_detail(detail: str, limit: int = 200) -> str:
    """A validator's message without the values it quotes (msgspec quotes a bad enum value or tag)."""
    return mask_digits(_QUOTED.sub("<value>", detail))[:limit]


def json_type(value: object) -> str:
    names = {bool: "bool", int: "int", float: "float", str: "str", list: "array", dict: "object"}
    return "<" + names.get(type(value), "null" if value is None else "other") + ">"


def shown(value: object) -> object:
    """A descriptive field's value as a preview may show it."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        return mask_digits(str(value)) if abs(value) >= 100_000 else value
    if isinstance(value, str):
        if len(value) > SHOWN_CHARS:
            return f"<str of {len(value)} chars>"
        return _UNSAFE_CHARS.sub("?", mask_digits(value))
    return json_type(value)


def safe_preview(payload: bytes) -> str:
    """The preview of a rejected payload: a masked summary of a parse, never its raw bytes."""
    if not payload.strip():
        return "<empty>"
    obj: Any = None
    if len(payload) <= PREVIEW_PARSE_BYTES:
        try:
            obj = _ANY.decode(payload)  # the caller has bounded the nesting depth (cityscreen.json_depth)
        except (msgspec.DecodeError, RecursionError):
            obj = None
    if not isinstance(obj, dict):
        what = "JSON " + json_type(obj) if obj is not None else "not JSON, or too large to parse"
        return f"<{what}: {len(payload)} bytes>"
    out: dict[str, object] = {}
    unknown = 0
    for key, value in obj.items():
        if key in SHOWN_FIELDS:
            out[key] = shown(value)
        elif key in TYPED_FIELDS:
            out[key] = json_type(value)
        elif key in DROPPED_FIELDS:
            out[key] = MASK
        else:
            unknown += 1  # its name may be free text too
    if unknown:
        out["unknown_fields"] = unknown
    return _ENCODER.encode(out).decode()[:PREVIEW_CHARS]


def encode_dead(dead: DeadLetter) -> bytes:
    return _ENCODER.encode(dead)
