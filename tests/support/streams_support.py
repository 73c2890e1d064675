"""Test support for the stream aggregators: a small synthetic raw feed, the ingest mapping, and a driver
that runs the real engine over clean events partition by partition (no Kafka)."""

from __future__ import annotations

import datetime as dt
import hashlib
import random
from collections.abc import Iterable, Sequence
from typing import Any

import h3
import numpy as np

from cityscreen.aggregate.carry import Carry
from cityscreen.aggregate.rows import EMPTY, VOCAB, Chunk
from cityscreen.aggregate.tables import CELL_IDS, profile_codes
from cityscreen.aggregates import WindowAggregate
from cityscreen.clean_batch import CleanBatch, decode_batch, encode_batch, kind_of
from cityscreen.demography import MERCHANT_CATEGORIES, PROVINCE_CODES, age_band
from cityscreen.events import (
    CleanEvent,
    Gender,
    PaymentEvent,
    RawEvent,
    RawPayment,
    RawSim,
    RawTransit,
    SimEvent,
    Tap,
    TransitEvent,
    partition_for,
)
from cityscreen.frames import Frame, decode_frame
from cityscreen.offline import OfflineAggregator
from cityscreen.pseudonym import pseudonymize
from cityscreen.settings import Settings, WindowSettings

DEFAULT_RES = WindowSettings.model_fields["h3_res"].default
START_MS = 1_767_225_600_000
# every layer over the base window: tests of one window's counting rules (close_chunks) use it
ONE_WINDOW = {"payments_window_s": 60, "transit_window_s": 60, "flows_window_s": 60}  # 2026-01-01T00:00:00Z
# a few places in central Shenzhen (lat, lng)
# a hand-made aggregator row: (ts_ms, person, base cell, a, b, c); see rows_chunk
Row = tuple[int, str, str, str, str | int, str]
PLACES = [(22.5431 + 0.004 * i, 114.0579 + 0.005 * j) for i in range(4) for j in range(4)]


def make_raw_events(
    persons: int = 60, minutes: int = 5, seed: int = 7, start_ms: int = START_MS, late: int = 3
) -> list[RawEvent]:
    """Roughly time-ordered events (jitter inside the grace period) plus `late` events far too late."""
    rnd = random.Random(seed)
    out: list[tuple[int, RawEvent]] = []
    n = 0
    for p in range(persons):
        gender: Gender = "F" if p % 2 else "M"
        birth, origin = 1950 + p % 60, PROVINCE_CODES[p % len(PROVINCE_CODES)]
        home = rnd.randrange(len(PLACES))
        for minute in range(minutes):
            ts = start_ms + minute * 60_000 + rnd.randrange(60_000)
            place = home if rnd.random() < 0.6 else rnd.randrange(len(PLACES))
            lat, lng = PLACES[place]
            n += 1
            out.append((ts, RawSim(v=1, event_id=f"s{n}", ts_ms=ts, imsi=f"4600{p:06d}", msisdn=f"138{p:08d}",
                                   tower_id=f"T{place}", lat=lat, lng=lng, gender=gender, birth_year=birth,
                                   origin=origin)))  # fmt: skip
            if rnd.random() < 0.5:
                n += 1
                amount = round(rnd.uniform(1, 300), 2) if rnd.random() < 0.95 else 5000.0
                category = rnd.choice(MERCHANT_CATEGORIES)
                out.append((ts + 1000, RawPayment(v=1, event_id=f"p{n}", ts_ms=ts + 1000, account=f"A{p}",
                                                  merchant_id=f"M{place}", category=category,
                                                  amount_cny=amount, lat=lat, lng=lng,
                                                  origin=origin)))  # fmt: skip
            if rnd.random() < 0.3:
                dest = rnd.randrange(len(PLACES))
                taps: tuple[tuple[Tap, int], ...] = (("in", place), ("out", dest))
                for k, (tap, place_) in enumerate(taps):
                    n += 1
                    t = ts + 2000 + k * 90_000
                    la, ln = PLACES[place_]
                    out.append((t, RawTransit(v=1, event_id=f"t{n}", ts_ms=t, card=f"C{p}", tap=tap,
                                              station_id=f"S{place_}", line=f"L{place_ % 3}", mode="metro",
                                              lat=la, lng=ln)))  # fmt: skip
    out.sort(key=lambda t: t[0] + rnd.randrange(-10_000, 10_000))
    events = [e for _, e in out]
    for i in range(late):
        src = events[(i + 1) * len(events) // (late + 2)]
        ts = start_ms + minutes * 60_000 - 600  # near the end of the feed ...
        events.append(RawSim(v=1, event_id=f"late{i}", ts_ms=START_MS + 1000 + i, imsi="4600999999",
                             msisdn="13800000000", tower_id="T0", lat=PLACES[0][0], lng=PLACES[0][1],
                             gender="F", birth_year=1990, origin="GD"))  # fmt: skip
        del src, ts  # ... the late events themselves belong to the first minute
    return events


def idle_phones(
    events: Sequence[RawEvent], every: int = 4, quiet_minutes: range = range(0)
) -> list[RawEvent]:
    """Keep one SIM event in `every` (by event id, so a person is heard only now and then, like an idle
    phone) and drop every event whose minute since `START_MS` is in `quiet_minutes` (a feed gap)."""

    def minute(ev: RawEvent) -> int:
        return (ev.ts_ms - START_MS) // 60_000

    def heard(ev: RawEvent) -> bool:
        return (
            not isinstance(ev, RawSim)
            or int(hashlib.sha256(ev.event_id.encode()).hexdigest(), 16) % every == 0
        )

    return [ev for ev in events if heard(ev) and minute(ev) not in quiet_minutes]


def persons_total(agg: WindowAggregate, key: str = "population.persons") -> int:
    """A person count summed over the window's base cells (each person is in one)."""
    return int(sum(stats[key].value for stats in agg.cells.get(agg.base_res, {}).values() if key in stats))


def to_clean(raw: RawEvent, settings: Settings) -> CleanEvent:
    """What the ingest edge does, for tests that bypass it."""

    def pseudo(identifier: str, domain: str) -> str:
        return pseudonymize(identifier, ts_ms=raw.ts_ms, secret=settings.pseudonym_secret,
                            rotation_s=settings.pseudonym_rotation_s, domain=domain,
                            offset_s=settings.pseudonym_rotation_offset_s)  # fmt: skip

    if isinstance(raw, RawSim):
        year = dt.datetime.fromtimestamp(raw.ts_ms / 1000, dt.UTC).year
        return SimEvent(v=1, event_id=raw.event_id, ts_ms=raw.ts_ms, person=pseudo(raw.imsi, "imsi"),
                        tower_id=raw.tower_id, lat=raw.lat, lng=raw.lng, gender=raw.gender,
                        age_band=age_band(raw.birth_year, year),  # type: ignore[arg-type]
                        origin=raw.origin)  # fmt: skip
    if isinstance(raw, RawPayment):
        person = pseudo(raw.account, "account")
        return PaymentEvent(v=1, event_id=raw.event_id, ts_ms=raw.ts_ms, person=person,
                            merchant_id=raw.merchant_id, category=raw.category, amount_cny=raw.amount_cny,
                            lat=raw.lat, lng=raw.lng, origin=raw.origin)  # fmt: skip
    assert isinstance(raw, RawTransit)
    return TransitEvent(v=1, event_id=raw.event_id, ts_ms=raw.ts_ms, person=pseudo(raw.card, "card"),
                        tap=raw.tap, station_id=raw.station_id, line=raw.line, mode=raw.mode,
                        lat=raw.lat, lng=raw.lng)  # fmt: skip


def split_records(
    events: Iterable[CleanEvent], partitions: int, per_record: int = 7
) -> list[tuple[int, str, int, list[CleanEvent]]]:
    """(partition, kind, offset, events) records in arrival order, as the ingest edge would write them."""
    pending: dict[tuple[int, str], list[CleanEvent]] = {}
    offsets: dict[tuple[int, str], int] = {}
    out = []
    for ev in events:
        key = (partition_for(ev.person, partitions), kind_of(ev))
        pending.setdefault(key, []).append(ev)
        if len(pending[key]) == per_record:
            out.append((key[0], key[1], offsets.get(key, 0), pending.pop(key)))
            offsets[key] = offsets.get(key, 0) + 1
    for key, evs in pending.items():
        out.append((key[0], key[1], offsets.get(key, 0), evs))
    return out


def run_engine(
    records: Sequence[tuple[int, str, int, list[CleanEvent]]], settings: Settings
) -> list[WindowAggregate]:
    """Apply records, close at every batch of 5 and at the end, merge, finalize (cityscreen.offline)."""
    agg = OfflineAggregator(settings)
    res = settings.window.h3_res
    out = list(agg.feed((p, kind, offset, encode_batch(kind, evs, res)) for p, kind, offset, evs in records))
    return out + list(agg.finish())


def batch_of(kind: str, events: Sequence[CleanEvent], res: int = DEFAULT_RES) -> CleanBatch:
    """Clean events as the decoded clean batch the aggregators read."""
    return decode_batch(encode_batch(kind, events, res))


def person_key(name: str) -> int:
    """A 64-bit person key for a hand-made row (any string names a person)."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "little")


def rows_chunk(kind: str, rows: Sequence[Row]) -> Chunk:
    """Hand-made rows (ts_ms, person, base cell, a, b, c) as the aggregators' columns (rows.COLUMNS):
    categories as strings, payments' b in fen."""
    if not rows:
        return EMPTY
    ts, person, cell, a, b, c = zip(*rows, strict=True)
    return Chunk(
        ts=np.array(ts, np.int64),
        person=np.array([person_key(p) for p in person], np.uint64),
        cell=np.array([h3.str_to_int(x) for x in cell], np.uint64),
        a=VOCAB.codes(a),
        b=np.array(b, np.int64) if kind == "payment" else VOCAB.codes(b),
        c=VOCAB.codes(c),
    )


def set_positions(carry: Carry, rows: Sequence[tuple[str, str, int]], profile: tuple[str, str, str]) -> None:
    """Give hand-made persons a last known position: (person, base cell, ts_ms) rows, one profile."""
    rows = sorted(rows, key=lambda r: person_key(r[0]))
    n = len(rows)
    keys = np.array([person_key(p) for p, _, _ in rows], np.uint64)
    cells = np.array([h3.str_to_int(c) for _, c, _ in rows], np.uint64)
    ts = np.array([t for _, _, t in rows], np.int64)
    codes = [VOCAB.codes([value] * n) for value in profile]
    carry.positions.upsert(keys, CELL_IDS.codes(cells), ts, profile_codes(*codes))


async def produce_clean(
    bootstrap: str,
    events: Sequence[CleanEvent],
    partitions: int,
    per_record: int = 50,
    *,
    as_json: bool = False,
    res: int = DEFAULT_RES,
    **producer_options: object,
) -> int:
    """Write clean events to the clean topics, one partition per person: as clean batches, the format the
    ingest edge writes, or (`as_json`) as JSON arrays, which the aggregators also read. Returns the
    records the broker acknowledged (all of them: a refused one raises); `producer_options` go to the
    producer (e.g. acks="all", enable_idempotence=True)."""
    import asyncio

    from aiokafka import AIOKafkaProducer

    from cityscreen.events import CLEAN_TOPICS, encode_many

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=5, max_request_size=4_000_000, **producer_options
    )
    await producer.start()
    try:
        acks = []
        for p, kind, _, evs in split_records(events, partitions, per_record):
            value = encode_many(evs) if as_json else encode_batch(kind, evs, res)
            acks.append(await producer.send(CLEAN_TOPICS[kind], value, partition=p))
        return len(await asyncio.gather(*acks))
    finally:
        await producer.stop()


def expected_frames(
    aggregates: Sequence[WindowAggregate], settings: Settings
) -> dict[tuple[int, int], bytes]:
    """(res, window_start_ms) -> the frame JSON the pipeline must publish (published_ms zeroed): each
    base window's frame shows, besides its own layers, those of each longer window that ended at or
    before its end (the latest one), as released on their own."""
    from cityscreen.frames import encode_frame
    from cityscreen.fused import fused_indicators
    from cityscreen.privacy.gate import release_series

    base_s = settings.window.window_s
    out: dict[tuple[int, int], bytes] = {}
    previous: dict[tuple[int, int], object] = {}
    longer: dict[tuple[int, int, int], Any] = {}  # (span_s, res, start) -> its released frame
    ordered = sorted(aggregates, key=lambda a: (a.window_start_ms + a.window_s * 1000, -a.window_s))
    for agg, frames in release_series(ordered, settings.privacy):
        for frame in frames:
            if agg.window_s != base_s:
                longer[(agg.window_s, frame.res, frame.window_start_ms)] = frame
                continue
            end = frame.window_start_ms + base_s * 1000
            for span_s in sorted({s for s, _, _ in longer}):
                shown = longer.get((span_s, frame.res, end - end % (span_s * 1000) - span_s * 1000))
                if shown is not None:
                    for cell, stats in shown.cells.items():
                        frame.cells.setdefault(cell, {}).update(stats)
                    if "flows" in shown.spans:
                        frame.flows = shown.flows
                    frame.spans = {**frame.spans, **shown.spans}
            prev = previous.get((frame.res, frame.window_start_ms - frame.window_s * 1000))
            frame.fused = fused_indicators(frame, prev)  # type: ignore[arg-type]
            previous[(frame.res, frame.window_start_ms)] = frame
            out[(frame.res, frame.window_start_ms)] = encode_frame(frame)
    return out


def published_frames(redis_client: object, settings: Settings) -> dict[tuple[int, int], bytes]:
    """The frames in Redis, keyed like `expected_frames`, published_ms zeroed."""
    from cityscreen import store_keys
    from cityscreen.frames import decode_frame, encode_frame

    out: dict[tuple[int, int], bytes] = {}
    for res in settings.window.resolutions:
        starts = redis_client.zrange(store_keys.frame_index_key(res), 0, -1)  # type: ignore[attr-defined]
        for start in starts:
            data = redis_client.get(store_keys.frame_key(res, int(start)))  # type: ignore[attr-defined]
            frame = decode_frame(data)
            frame.published_ms = 0
            out[(res, int(start))] = encode_frame(frame)
    return out


def base_windows(aggregates: Sequence[WindowAggregate], settings: Settings) -> int:
    """How many base windows (the windows whose frames the sink counts as published): the longer
    windows of spend, transit and flows are released too, but shown inside base-window frames."""
    return sum(a.window_s == settings.window.window_s for a in aggregates)


def windows_published(redis_client: object) -> int:
    from cityscreen import store_keys

    value = redis_client.hget(store_keys.STATS_KEY, "windows_published")  # type: ignore[attr-defined]
    return int(value or 0)


def frames_diff(got: dict[tuple[int, int], bytes], want: dict[tuple[int, int], bytes], most: int = 3) -> str:
    """'' when equal, else a short account of how (a failing golden test's message: CI shows only the
    tail of its output, where a whole-dict diff of frames hid the test's name)."""
    if got == want:
        return ""
    lines = [f"{len(got)} frames published, {len(want)} expected"]
    missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
    if missing or extra:
        lines.append(f"missing (res, window) {missing[:most]}; unexpected {extra[:most]}")
    differ = [k for k in sorted(set(got) & set(want)) if got[k] != want[k]]
    lines.append(f"{len(differ)} differ, e.g. {differ[:most]}")
    for key in differ[:most]:
        lines += _frame_diff(key, decode_frame(got[key]), decode_frame(want[key]), most)
    return "\n".join(lines)


def _frame_diff(key: tuple[int, int], got: Frame, want: Frame, most: int) -> list[str]:
    parts = ("cells", "flows", "fused", "spans", "privacy")
    fields = [f for f in parts if getattr(got, f) != getattr(want, f)]
    cells = [
        (c, stat, got.cells.get(c, {}).get(stat, "absent"), want.cells.get(c, {}).get(stat, "absent"))
        for c in sorted(set(got.cells) | set(want.cells))
        for stat in sorted(set(got.cells.get(c, {})) | set(want.cells.get(c, {})))
    ]
    changed = [x for x in cells if x[2] != x[3]]
    out = [f"{key}: {fields} differ; {len(changed)} values (cell, stat, got, want), e.g. {changed[:most]}"]
    if "spans" in fields:
        out.append(f"{key}: spans got {got.spans} want {want.spans}")
    return out
