"""The ingest edge's pure logic: validate raw records, pseudonymize identifiers, build dead letters.

A record is one raw event or a JSON array of them. Arrays are split element by element (as
undecoded `msgspec.Raw`), so one bad element is dead-lettered alone and its neighbours go through.
Valid events become clean events whose `person` is a keyed pseudonym (HMAC, rotating key), and
whose age is an age band: no raw identifier and no birth year leaves this module.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, TypeVar, cast

import msgspec

from cityscreen.city import BBox, City, load_city
from cityscreen.deadletter import DeadLetter, safe_detail, safe_preview
from cityscreen.demography import ORIGIN_REGIONS, age_band
from cityscreen.events import (
    SCHEMA_VERSION,
    CleanEvent,
    PaymentEvent,
    RawEvent,
    RawPayment,
    RawSim,
    RawTransit,
    SimEvent,
    TransitEvent,
    partition_for,
)
from cityscreen.json_depth import is_too_deep
from cityscreen.pseudonym import Pseudonymizer
from cityscreen.settings import PLACEHOLDER_SECRETS, Settings
from cityscreen.vocabulary import (
    BAD_ID,
    ID_PATTERN,
    MAX_ID_CHARS,
    Vocabulary,
    is_id,
    payment_problem,
    transit_problem,
)
from cityscreen.vocabulary import REASONS as VOCABULARY_REASONS

# Where a record was read: (topic, partition, offset, now_ms)
Where = tuple[str, int, int, int]

# Dead-letter reasons, one per class of bad input (each is also a counter: deadletter.<reason>).
OVERSIZE = "oversize"
MALFORMED = "malformed"  # not JSON at all
INVALID_SCHEMA = "invalid_schema"  # wrong types, missing fields, unknown kind
UNKNOWN_VERSION = "unknown_version"
OUT_OF_CITY = "out_of_city"
TS_SKEW = "ts_skew"
UNKNOWN_ORIGIN = "unknown_origin"
BAD_BIRTH_YEAR = "implausible_birth_year"
INVALID_VALUE = "invalid_value"  # e.g. a negative or non-finite amount, an empty identifier
IMPLAUSIBLE_AMOUNT = "implausible_amount"  # amount_cny above the max_amount_cny setting
TOO_DEEP = "too_deep"  # arrays / objects nested deeper than MAX_JSON_DEPTH
UNPROCESSABLE = "unprocessable"  # anything else that failed on this record alone (a bug or a resource limit)
REASONS = (OVERSIZE, MALFORMED, INVALID_SCHEMA, UNKNOWN_VERSION, OUT_OF_CITY, TS_SKEW, UNKNOWN_ORIGIN,
           BAD_BIRTH_YEAR, INVALID_VALUE, IMPLAUSIBLE_AMOUNT, TOO_DEEP, UNPROCESSABLE,
           *VOCABULARY_REASONS)  # fmt: skip
ACCEPTED = "ingest.accepted"
MAX_AGE_YEARS = 110
# Valid records are an event object or an array of them (depth 2); the slack admits a future schema's
# nested field, and stays far below where msgspec's recursive decoder raises RecursionError (~5,000).
MAX_JSON_DEPTH = 8
VOCABULARY_MEMO_SIZE = 100_000  # (name, ...) -> vocabulary verdict
MAX_MEMO_KEY_CHARS = 256
_MISS = object()
_T = TypeVar("_T")
_RAW_ONE = msgspec.json.Decoder(RawEvent)
_ELEMENTS = msgspec.json.Decoder(list[msgspec.Raw])
_ANY = msgspec.json.Decoder()
_ID_DOMAIN = {RawSim: "imsi", RawPayment: "account"}


@lru_cache(maxsize=1)
def default_vocabulary() -> Vocabulary:
    """The bundled city's vocabulary (cityscreen/data/shenzhen.json)."""
    return Vocabulary.of_city(load_city())


@dataclass
class IngestConfig:
    bbox: BBox
    secret: str
    rotation_s: int
    max_skew_s: int
    max_payload_bytes: int
    partitions: int
    rotation_offset_s: int = 0
    vocabulary: Vocabulary = field(default_factory=default_vocabulary)
    max_amount_cny: float = 100_000.0


@dataclass
class IngestResult:
    """One batch's output: clean events grouped per (kind, partition), dead letters and counters."""

    clean: dict[tuple[str, int], list[CleanEvent]] = field(default_factory=dict)
    dead: list[DeadLetter] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)


def config_from_settings(settings: Settings, bbox: BBox, city: City | None = None) -> IngestConfig:
    """The edge's configuration; the vocabulary is `city`'s, else that of the generator's city file."""
    return IngestConfig(
        vocabulary=Vocabulary.of_city(city if city is not None else load_city(settings.generator.city_file)),
        max_amount_cny=settings.max_amount_cny,
        bbox=bbox,
        secret=settings.pseudonym_secret,
        rotation_s=settings.pseudonym_rotation_s,
        rotation_offset_s=settings.pseudonym_rotation_offset_s,
        max_skew_s=settings.max_event_skew_s,
        max_payload_bytes=settings.max_payload_bytes,
        partitions=settings.kafka.partitions,
    )


def require_secret(settings: Settings) -> None:
    """Refuse a missing or placeholder pseudonym secret outside development mode."""
    from cityscreen.errors import CityScreenError

    secret = settings.pseudonym_secret
    if settings.mode != "development" and (secret.strip().lower() in PLACEHOLDER_SECRETS or len(secret) < 16):
        raise CityScreenError(
            "the ingest edge refuses to start in production mode with a missing or placeholder "
            "CITY_PSEUDONYM_SECRET: set it to a long random value (e.g. `openssl rand -hex 32`)"
        )


class Validator:
    """Turns raw records into clean events or dead letters. Holds the pseudonym cache between batches."""

    def __init__(self, config: IngestConfig) -> None:
        self.config = config
        self.pseudonym = Pseudonymizer(config.secret, config.rotation_s, offset_s=config.rotation_offset_s)
        self._memo: dict[tuple[str, ...], object] = {}

    def process(
        self,
        result: IngestResult,
        value: bytes | None,
        *,
        topic: str,
        partition: int,
        offset: int,
        now_ms: int,
    ) -> None:
        """Add one record's clean events, dead letters and counts to `result`. Never raises: whatever
        fails on this record dead-letters it (and, inside an array, only the failing element)."""
        where = (topic, partition, offset, now_ms)
        value = value or b""
        try:
            self._record(result, value, where, now_ms)
        except Exception as exc:  # RecursionError, MemoryError, a bug: this record alone is lost to it
            self._unprocessable(result, exc, where)

    def _record(self, result: IngestResult, value: bytes, where: Where, now_ms: int) -> None:
        if len(value) > self.config.max_payload_bytes:
            detail = f"record of {len(value)} bytes exceeds max_payload_bytes={self.config.max_payload_bytes}"
            self._dead(result, OVERSIZE, detail, value, where)
            return
        if is_too_deep(value, MAX_JSON_DEPTH):
            detail = f"arrays or objects nested deeper than {MAX_JSON_DEPTH} levels: events are flat objects"
            self._dead(result, TOO_DEEP, detail, value, where, preview=f"<{len(value)} bytes, not decoded>")
            return
        if value.lstrip()[:1] == b"[":
            try:
                elements = [bytes(e) for e in _ELEMENTS.decode(value)]
            except msgspec.DecodeError as exc:
                self._dead(result, MALFORMED, str(exc), value, where)
                return
        else:
            elements = [value]
        for element in elements:
            try:
                self._one(result, element, where, now_ms)
            except Exception as exc:  # `_one` adds to `result` last, so a failure leaves nothing behind
                self._unprocessable(result, exc, where)

    def _unprocessable(self, result: IngestResult, exc: Exception, where: Where) -> None:
        # the exception's text may quote the payload: only its type goes into the dead letter
        detail = f"{type(exc).__name__} while validating: a bug or a resource limit, report the offset"
        self._dead(result, UNPROCESSABLE, detail, b"", where, preview="<not shown: it failed to process>")

    def _one(self, result: IngestResult, element: bytes, where: Where, now_ms: int) -> None:
        try:
            raw = _RAW_ONE.decode(element)
        except msgspec.ValidationError as exc:
            reason = UNKNOWN_VERSION if _version_of(element) not in (SCHEMA_VERSION, None) else INVALID_SCHEMA
            self._dead(result, reason, str(exc), element, where)
            return
        except msgspec.DecodeError as exc:
            self._dead(result, MALFORMED, str(exc), element, where)
            return
        self._accept(result, raw, element, where, now_ms)

    def _accept(self, result: IngestResult, raw: RawEvent, element: bytes, where: Where, now_ms: int) -> None:
        """A decoded event: dead-lettered, or added to `result` as a clean event (the per-event path)."""
        problem = self.problem(raw, now_ms)
        if problem:
            self._dead(result, problem[0], problem[1], element, where)
            return
        clean = self.clean(raw)
        key = (str(raw.__struct_config__.tag), partition_for(clean.person, self.config.partitions))
        bucket = result.clean.get(key)
        if bucket is None:
            result.clean[key] = [clean]
        else:
            bucket.append(clean)
        result.counts[ACCEPTED] += 1

    def problem(self, raw: RawEvent, now_ms: int) -> tuple[str, str] | None:
        """(reason, detail) when a decoded raw event is invalid, else None."""
        if raw.v != SCHEMA_VERSION:
            return UNKNOWN_VERSION, f"v: this edge reads schema version {SCHEMA_VERSION} only"
        if not self.config.bbox.contains(raw.lat, raw.lng):
            return OUT_OF_CITY, "lat, lng: the position must lie inside the city model's bbox"
        skew_s = abs(raw.ts_ms - now_ms) / 1000
        if skew_s > self.config.max_skew_s:
            return (
                TS_SKEW,
                f"ts_ms: more than max_event_skew_s={self.config.max_skew_s} s from the edge's clock",
            )
        shortest, longest = _identifier_sizes(raw)
        if not raw.event_id or not shortest:
            return INVALID_VALUE, "event_id and the subscriber / account / card identifier must not be empty"
        if not ID_PATTERN.fullmatch(raw.event_id):
            return BAD_ID, f"event_id: at most {MAX_ID_CHARS} letters, digits or ._:- characters"
        if longest > MAX_ID_CHARS:
            return BAD_ID, f"the subscriber / account / card identifier is over {MAX_ID_CHARS} characters"
        vocabulary = self.config.vocabulary
        if isinstance(raw, RawSim) and not self._known((raw.tower_id,), is_id, raw.tower_id):
            return BAD_ID, f"tower_id: at most {MAX_ID_CHARS} letters, digits or ._:- characters"
        if isinstance(raw, RawTransit):
            stop = (raw.line, raw.mode, raw.station_id)  # keys of 1, 2 or 3 names: no kind collides
            return self._known(stop, transit_problem, vocabulary, *stop)
        if isinstance(raw, RawSim | RawPayment) and raw.origin not in ORIGIN_REGIONS:
            return UNKNOWN_ORIGIN, "origin: not a code of cityscreen.demography.ORIGIN_REGIONS"
        if isinstance(raw, RawSim):
            year = datetime.fromtimestamp(raw.ts_ms / 1000, UTC).year
            if not year - MAX_AGE_YEARS <= raw.birth_year <= year:
                return (
                    BAD_BIRTH_YEAR,
                    f"birth_year: must be in the {MAX_AGE_YEARS} years up to the event's year",
                )
        if isinstance(raw, RawPayment):
            if not (math.isfinite(raw.amount_cny) and raw.amount_cny > 0):
                return INVALID_VALUE, "amount_cny: must be a positive finite number"
            if raw.amount_cny > self.config.max_amount_cny:
                return IMPLAUSIBLE_AMOUNT, f"amount_cny: above max_amount_cny={self.config.max_amount_cny:g}"
            shop = (raw.category, raw.merchant_id)
            return self._known(shop, payment_problem, vocabulary, *shop)
        return None

    def _known(self, key: tuple[str, ...], check: Callable[..., _T], *args: Any) -> _T:
        """`check(*args)`, memoised per key (args, not a closure: a closure over `raw` made every use
        of `raw` in `problem` slower): a city has a few thousand towers, lines, stations and merchants,
        so the vocabulary rules run once per name, not once per event (they doubled `problem`'s cost)."""
        hit = self._memo.get(key, _MISS)
        if hit is _MISS:
            hit = check(*args)
            if sum(map(len, key)) <= MAX_MEMO_KEY_CHARS:  # a 900 KB station id is not kept
                if len(self._memo) >= VOCABULARY_MEMO_SIZE:
                    self._memo.clear()  # crude but bounded, like the pseudonym memo
                self._memo[key] = hit
        return cast(_T, hit)

    def clean(self, raw: RawEvent) -> CleanEvent:
        """The clean event of a valid raw event (see `problem`)."""
        return to_clean(raw, self.pseudonym)

    def _dead(
        self,
        result: IngestResult,
        reason: str,
        detail: str,
        payload: bytes,
        where: Where,
        *,
        preview: str | None = None,  # instead of parsing `payload` (which may be what failed)
    ) -> None:
        topic, partition, offset, now_ms = where
        result.dead.append(
            DeadLetter(
                reason=reason,
                detail=safe_detail(detail),
                source_topic=topic,
                partition=partition,
                offset=offset,
                ingest_ts_ms=now_ms,
                payload_preview=safe_preview(payload) if preview is None else preview,
            )
        )
        result.counts[f"deadletter.{reason}"] += 1


def to_clean(raw: RawEvent, pseudonym: Callable[[str, int, str], str]) -> CleanEvent:
    """A valid raw event as a clean event: `person` is the keyed pseudonym, birth year becomes a band."""
    if isinstance(raw, RawSim):
        return SimEvent(
            v=raw.v, event_id=raw.event_id, ts_ms=raw.ts_ms, person=pseudonym(raw.imsi, raw.ts_ms, "imsi"),
            tower_id=raw.tower_id, lat=raw.lat, lng=raw.lng, gender=raw.gender,
            age_band=age_band(raw.birth_year, datetime.fromtimestamp(raw.ts_ms / 1000, UTC).year),  # type: ignore[arg-type]
            origin=raw.origin,
        )  # fmt: skip
    if isinstance(raw, RawPayment):
        return PaymentEvent(
            v=raw.v, event_id=raw.event_id, ts_ms=raw.ts_ms,
            person=pseudonym(raw.account, raw.ts_ms, "account"), merchant_id=raw.merchant_id,
            category=raw.category, amount_cny=raw.amount_cny, lat=raw.lat,
            lng=raw.lng, origin=raw.origin,
        )  # fmt: skip
    return TransitEvent(
        v=raw.v, event_id=raw.event_id, ts_ms=raw.ts_ms, person=pseudonym(raw.card, raw.ts_ms, "card"),
        tap=raw.tap, station_id=raw.station_id, line=raw.line, mode=raw.mode, lat=raw.lat, lng=raw.lng,
    )  # fmt: skip


def clean_event(raw: RawEvent, *, secret: str, rotation_s: int, offset_s: int = 0) -> CleanEvent:
    """The library form: one valid raw event to its clean event (same pseudonyms as the ingest edge)."""
    return to_clean(raw, Pseudonymizer(secret, rotation_s, memo_size=0, offset_s=offset_s))


def _identifier_sizes(raw: RawEvent) -> tuple[int, int]:
    """(shortest, longest) length of the raw identifiers of an event: one call on the hot path."""
    if isinstance(raw, RawSim):
        a, b = len(raw.imsi), len(raw.msisdn)
        return (a, b) if a < b else (b, a)
    n = len(raw.account) if isinstance(raw, RawPayment) else len(raw.card)
    return n, n


def _version_of(element: bytes) -> object:
    try:
        obj = _ANY.decode(element)
    except msgspec.DecodeError:
        return None
    return obj.get("v") if isinstance(obj, dict) else None
