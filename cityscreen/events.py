"""Event schemas (version 1) and the Kafka topics that carry them, defined once and used everywhere.

Wire format: JSON. A Kafka record's value is either one event object (what external producers send,
one event per record) or a JSON array of event objects (what CityScreen's own producers send, to cut
per-record overhead). Both decode with `decode_raw_many` / `decode_clean_many`. The ingest edge writes
the clean topics in a columnar format instead (`cityscreen.clean_batch`), which reads JSON too.

Two families:
- raw events, on the `city.ingest.*` topics, carry raw identifiers (IMSI, MSISDN, card or account
  numbers). Only the ingest edge reads them.
- clean events, on the topics the aggregators read, carry a keyed pseudonym (`person`) instead, and an
  age band instead of a birth year. No raw identifier exists in these types, so none can be encoded.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import msgspec

SCHEMA_VERSION = 1

# Raw topics: written by producers (the generator, or a telco / payment / transit feed), read by ingest.
INGEST_SIM_TOPIC = "city.ingest.sim.v1"
INGEST_PAYMENT_TOPIC = "city.ingest.payment.v1"
INGEST_TRANSIT_TOPIC = "city.ingest.transit.v1"
# Clean topics: written only by the ingest edge, read by the aggregators.
SIM_TOPIC = "city.sim.v1"
PAYMENT_TOPIC = "city.payment.v1"
TRANSIT_TOPIC = "city.transit.v1"
# Rejected records with their reason (never read by the aggregators).
DEADLETTER_TOPIC = "city.deadletter.v1"
# Released frames (written only by the release gate).
FRAMES_TOPIC = "city.frames.v1"

INGEST_TOPICS = {"sim": INGEST_SIM_TOPIC, "payment": INGEST_PAYMENT_TOPIC, "transit": INGEST_TRANSIT_TOPIC}
CLEAN_TOPICS = {"sim": SIM_TOPIC, "payment": PAYMENT_TOPIC, "transit": TRANSIT_TOPIC}
ALL_TOPICS = (*INGEST_TOPICS.values(), *CLEAN_TOPICS.values(), DEADLETTER_TOPIC, FRAMES_TOPIC)
# One partition per raw topic: the ingest edge then reads each kind in the order it was produced, so a
# backlog (a fast replay, an ingest restart) cannot reach a clean partition out of event-time order and
# turn on-time events late. docs/capacity.md gives what one ingest process measured and how to scale out.
INGEST_TOPIC_PARTITIONS = 1


def topic_partitions(topic: str, partitions: int) -> int:
    """Partitions to create for `topic` when the project's setting is `partitions`."""
    return INGEST_TOPIC_PARTITIONS if topic in INGEST_TOPICS.values() else partitions


def min_insync_replicas(replication_factor: int) -> int:
    """Replicas that must hold a record before an acks=all write succeeds: all but one, so one broker may
    fail without refusing writes or losing an acknowledged record (3 replicas: 2 in sync)."""
    return max(1, replication_factor - 1)


def replica_configs(replication_factor: int) -> dict[str, str]:
    """The topic configs that go with `replication_factor` (none for an unreplicated topic)."""
    if replication_factor == 1:
        return {}
    return {"min.insync.replicas": str(min_insync_replicas(replication_factor))}


Kind = Literal["sim", "payment", "transit"]
Gender = Literal["F", "M"]
AgeBand = Literal["0-17", "18-24", "25-34", "35-44", "45-54", "55-64", "65+"]
AGE_BANDS: tuple[str, ...] = ("0-17", "18-24", "25-34", "35-44", "45-54", "55-64", "65+")
GENDERS: tuple[str, ...] = ("F", "M")
Tap = Literal["in", "out"]
Mode = Literal["metro", "bus"]


# ---------------------------------------------------------------- raw (ingest topics only)
class RawSim(msgspec.Struct, tag_field="kind", tag="sim", kw_only=True, gc=False):
    """A SIM attached to a tower: subscriber attributes as registered at purchase."""

    v: int
    event_id: str
    ts_ms: int
    imsi: str
    msisdn: str
    tower_id: str
    lat: float
    lng: float
    gender: Gender
    birth_year: int
    origin: str  # province / region code of the ID document, see cityscreen.demography


class RawPayment(msgspec.Struct, tag_field="kind", tag="payment", kw_only=True, gc=False):
    """A mobile payment at a merchant."""

    v: int
    event_id: str
    ts_ms: int
    account: str
    merchant_id: str
    category: str
    amount_cny: float
    lat: float
    lng: float
    origin: str


class RawTransit(msgspec.Struct, tag_field="kind", tag="transit", kw_only=True, gc=False):
    """A tap-in or tap-out at a metro station or bus stop."""

    v: int
    event_id: str
    ts_ms: int
    card: str
    tap: Tap
    station_id: str
    line: str
    mode: Mode
    lat: float
    lng: float


RawEvent = RawSim | RawPayment | RawTransit

# Fields that hold raw identifiers: the ingest edge replaces them, dead-letter records mask them.
RAW_IDENTIFIER_FIELDS = ("imsi", "msisdn", "account", "card")


# ---------------------------------------------------------------- clean (aggregator topics)
# gc=False: scalar fields only, so no cycles; untracked, millions of them in flight cost the cyclic
# collector nothing
class SimEvent(msgspec.Struct, tag_field="kind", tag="sim", kw_only=True, frozen=True, gc=False):
    v: int
    event_id: str
    ts_ms: int
    person: str  # keyed pseudonym of the IMSI
    tower_id: str
    lat: float
    lng: float
    gender: Gender
    age_band: AgeBand
    origin: str


class PaymentEvent(msgspec.Struct, tag_field="kind", tag="payment", kw_only=True, frozen=True, gc=False):
    v: int
    event_id: str
    ts_ms: int
    person: str  # keyed pseudonym of the payment account
    merchant_id: str
    category: str
    amount_cny: float
    lat: float
    lng: float
    origin: str


class TransitEvent(msgspec.Struct, tag_field="kind", tag="transit", kw_only=True, frozen=True, gc=False):
    v: int
    event_id: str
    ts_ms: int
    person: str  # keyed pseudonym of the fare card
    tap: Tap
    station_id: str
    line: str
    mode: Mode
    lat: float
    lng: float


CleanEvent = SimEvent | PaymentEvent | TransitEvent

_RAW_ONE = msgspec.json.Decoder(RawEvent)
_RAW_MANY = msgspec.json.Decoder(list[RawEvent])
_CLEAN_ONE = msgspec.json.Decoder(CleanEvent)
_CLEAN_MANY = msgspec.json.Decoder(list[CleanEvent])
_ENCODER = msgspec.json.Encoder()


def _is_array(value: bytes) -> bool:
    return value.lstrip()[:1] == b"["


def decode_raw_many(value: bytes) -> list[RawEvent]:
    """Decode a raw record (one event or an array). Raises msgspec.DecodeError/ValidationError."""
    return _RAW_MANY.decode(value) if _is_array(value) else [_RAW_ONE.decode(value)]


def decode_clean_many(value: bytes) -> list[CleanEvent]:
    """Decode a clean record (one event or an array). Raises msgspec.DecodeError/ValidationError."""
    return _CLEAN_MANY.decode(value) if _is_array(value) else [_CLEAN_ONE.decode(value)]


def encode(event: RawEvent | CleanEvent) -> bytes:
    return _ENCODER.encode(event)


def encode_many(events: Sequence[RawEvent | CleanEvent]) -> bytes:
    return _ENCODER.encode(events)


def partition_for(person: str, partitions: int) -> int:
    """The clean-topic partition of a person's events.

    Clean topics are keyed by person so that one worker sees all of a person's events: distinct-person
    counts from different partitions then add up exactly, and per-person state (last cell, open trip)
    lives in one place. Pseudonyms are uniform hex digests, so their prefix spreads evenly.
    """
    return int(person[:8], 16) % partitions
