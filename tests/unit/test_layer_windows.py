"""Each layer over its own window (issue 14, item 4): settings, the release book's order, the frames the
sink stores (a base-window frame shows the latest longer window, labelled), the manifest and the views."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import pytest
from pydantic import ValidationError

from cityscreen import store_keys
from cityscreen.aggregate.close import AggConfig
from cityscreen.aggregate.engine import DictLog, Engine
from cityscreen.aggregate.partial import (
    Partial,
    PartialMessage,
    decode_header,
    encode_message,
    final_through_ms,
)
from cityscreen.aggregates import WindowAggregate
from cityscreen.frames import Frame, FramePrivacy, decode_frame, encode_frame
from cityscreen.privacy import build_manifest
from cityscreen.release_book import Release, ReleaseBook
from cityscreen.settings import PrivacySettings, Settings
from services.gateway.totals import window_totals
from services.gateway.view import make_view, view_frame
from streams.release import ReleaseSink
from tests.support.streams_support import (
    START_MS,
    expected_frames,
    frames_diff,
    make_raw_events,
    run_engine,
    split_records,
    to_clean,
)
from tests.unit.test_release_gate_pool import _Redis

SPANS = {"payments_window_s": 120, "transit_window_s": 120, "flows_window_s": 120}


def test_defaults_people_present_per_minute_and_the_event_layers_per_quarter_hour() -> None:
    w = Settings().window
    assert w.layer_windows_s == {
        "population": 60,
        "active": 60,
        "payments": 900,
        "transit": 900,
        "flows": 900,
    }
    assert w.spans_s == {60: ("population", "active"), 900: ("payments", "transit", "flows")}


@pytest.mark.parametrize(
    ("window", "words"),
    [
        ({"payments_window_s": 90}, "must be a multiple of CITY_WINDOW__WINDOW_S"),
        # 840 s divides neither the day nor the 20:00 UTC rotation offset: a window would straddle it
        ({"flows_window_s": 840}, "multiples of CITY_WINDOW__FLOWS_WINDOW_S"),
    ],
)
def test_a_window_that_is_no_whole_number_of_base_windows_or_straddles_a_rotation_is_refused(
    window: dict[str, Any], words: str
) -> None:
    with pytest.raises(ValidationError, match=words):
        Settings(window=window)


def test_the_book_releases_a_span_before_the_base_window_that_completes_it() -> None:
    book = ReleaseBook(1, window_s=60)
    base = Partial(START_MS + 60_000, 0, {}, [], 0)
    span = Partial(START_MS, 0, {}, [], 0, span_s=120)
    # as the worker sends them: the span first, saying only the window before its last is final
    book.add(decode_header(encode_message(PartialMessage(0, final_through_ms(span, 60), span))))
    assert final_through_ms(span, 60) == START_MS and book.take_complete() == []
    book.add(decode_header(encode_message(PartialMessage(0, final_through_ms(base, 60), base))))
    assert [r for r, _ in book.take_complete()] == [Release(START_MS, 120), Release(START_MS + 60_000, 0)]
    assert book.take_complete() == []


def test_a_span_goes_out_before_the_partial_of_its_last_base_window() -> None:
    """A crash between two sends must never leave a release book with a partition's "final through D"
    and without its span partial that ends at D."""
    settings = Settings(kafka={"partitions": 1}, window=SPANS)
    engine = Engine(AggConfig.from_settings(settings), DictLog(), clock=lambda: 0.0)
    raw = make_raw_events(persons=40, minutes=4, late=0)
    for p, kind, offset, evs in split_records([to_clean(r, settings) for r in raw], 1, 9):
        engine.apply_events(p, kind, offset, evs)
    engine.persist()
    sent = [(part.window_start_ms, part.span_s) for c in engine.close_due(idle_s=0.0) for part in c.partials]
    spans = [s for s in sent if s[1]]
    assert spans
    for start, span_s in spans:
        last = start + (span_s - 60) * 1000
        assert sent.index((start, span_s)) < sent.index((last, 0))


def _frames(settings: Settings, minutes: int) -> tuple[_Redis, list[int]]:
    """The sink's stores of a small feed through the real engine, in release order."""
    raw = make_raw_events(persons=80, minutes=minutes, late=0)
    aggregates = run_engine(split_records([to_clean(r, settings) for r in raw], 2, 7), settings)

    async def send(key: bytes, value: bytes) -> None:
        pass

    redis = _Redis()
    asyncio.run(ReleaseSink(redis, send, settings, clock_ms=lambda: 1).publish_all(aggregates))
    return redis, sorted({a.window_start_ms for a in aggregates if a.window_s == 60})


def test_a_minute_frame_shows_the_latest_longer_window_ended_by_its_end_labelled_with_its_span() -> None:
    settings = Settings(kafka={"partitions": 2}, window=SPANS)
    redis, minutes = _frames(settings, minutes=5)
    res = 6
    for start in minutes:
        frame = decode_frame(redis.kv[store_keys.frame_key(res, start)])
        assert frame.spans["population"] == [start, start + 60_000]
        end = start + 60_000
        shown = end - end % 120_000 - 120_000  # the two minutes ended at or before this minute's end
        if shown < START_MS:
            assert "payments" not in frame.spans  # no longer window has ended yet
            assert not any(k.startswith("payments") for s in frame.cells.values() for k in s)
            continue
        assert frame.spans["payments"] == frame.spans["flows"] == [shown, shown + 120_000]
        span = decode_frame(redis.kv[store_keys.frame_key(res, shown, 120)])
        assert span.window_s == 120 and set(span.spans) == {"payments", "transit", "flows"}
        # the span's released values, unchanged, beside the minute's own
        for cell, stats in span.cells.items():
            assert {k: frame.cells[cell][k] for k in stats} == stats
        assert frame.flows == span.flows
        assert not any(k.startswith("population") for s in span.cells.values() for k in s)
    assert store_keys.latest_frame_key(res, 120) in redis.kv


class _SpanGateLast(ReleaseSink):
    """A sink whose longer windows leave their gate only once the base frame ending with them is sent:
    a span gated more slowly than the minute it ends with, as a 15-minute window is at peak."""

    def __init__(self, redis: _Redis, settings: Settings) -> None:
        super().__init__(redis, self._send, settings, clock_ms=lambda: 1)
        self.sent: list[tuple[bytes, bytes]] = []
        self.base_sent: dict[int, asyncio.Event] = {}  # end ms -> its base frame is sent

    def _ended(self, end_ms: int) -> asyncio.Event:
        return self.base_sent.setdefault(end_ms, asyncio.Event())

    async def _send(self, key: bytes, value: bytes) -> None:
        self.sent.append((key, value))
        frame = decode_frame(value)
        if frame.window_s == 60:
            self._ended(frame.window_start_ms + 60_000).set()

    async def _gate(self, aggregate: Any, kept: bytes | None) -> Any:
        if aggregate.window_s != 60:  # a guard against a hang, not a timing: the order is forced
            await asyncio.wait_for(self._ended(aggregate.window_end_ms).wait(), timeout=60)
        return await super()._gate(aggregate, kept)


class _Crash(Exception):
    pass


class _SpanGateCrashes(_SpanGateLast):
    """The worker dies in the gate of the longer window ending at `end_ms`, after the minute ending
    with it was sent."""

    def __init__(self, redis: _Redis, settings: Settings, end_ms: int) -> None:
        super().__init__(redis, settings)
        self.end_ms = end_ms

    async def _gate(self, aggregate: Any, kept: bytes | None) -> Any:
        gated = await super()._gate(aggregate, kept)
        if aggregate.window_s != 60 and aggregate.window_end_ms == self.end_ms:
            raise _Crash
        return gated


def test_a_minute_frame_does_not_wait_for_the_longer_window_ending_with_it_and_is_stored_again() -> None:
    settings = Settings(kafka={"partitions": 2}, window=SPANS)
    raw = make_raw_events(persons=80, minutes=5, late=0)
    aggregates = run_engine(split_records([to_clean(r, settings) for r in raw], 2, 7), settings)
    redis = _Redis()
    sink = _SpanGateLast(redis, settings)
    asyncio.run(sink.publish_all(aggregates))
    res = 6
    keys = [k for k, _ in sink.sent if k.startswith(f"{res}:".encode())]
    spans = sorted({a.window_start_ms for a in aggregates if a.window_s == 120})
    assert len(spans) >= 2
    for start in spans:
        end, span_key = start + 120_000, f"{res}:{start}:120".encode()
        minute_key = f"{res}:{end - 60_000}".encode()
        if minute_key not in keys:
            continue  # the feed ends with this span: no minute of its end
        first, again = [i for i, k in enumerate(keys) if k == minute_key]
        assert first < keys.index(span_key) < again  # sent before its span, then again after it
        before = decode_frame(next(v for k, v in sink.sent if k == minute_key))
        shown = [start - 120_000, start] if start - 120_000 in spans else None  # until then, the one before
        assert before.spans.get("payments") == shown
    # what stays is each minute's frame with the latest longer window ended by its end, byte for byte
    windows = {a.window_start_ms for a in aggregates if a.window_s == 60}
    _assert_minutes_stored(redis, aggregates, settings)
    assert redis.hashes[store_keys.STATS_KEY]["windows_published"] == len(windows)


def test_a_minute_ending_two_longer_windows_is_stored_again_only_after_both() -> None:
    settings = Settings(
        kafka={"partitions": 2}, window={**SPANS, "transit_window_s": 180}
    )  # 2- and 3-minute windows both end every 6 minutes
    raw = make_raw_events(persons=80, minutes=8, late=0)
    aggregates = run_engine(split_records([to_clean(r, settings) for r in raw], 2, 7), settings)
    redis = _Redis()
    sink = _SpanGateLast(redis, settings)
    asyncio.run(sink.publish_all(aggregates))
    keys = [k for k, _ in sink.sent if k.startswith(b"6:")]
    ends = {a.window_end_ms for a in aggregates if a.window_s == 120} & {
        a.window_end_ms for a in aggregates if a.window_s == 180
    }
    minutes = {a.window_start_ms for a in aggregates if a.window_s == 60}
    common = [e for e in ends if e - 60_000 in minutes]
    assert common, "the feed must hold a minute that ends both longer windows"
    for end in common:
        spans = [f"6:{end - s * 1000}:{s}".encode() for s in (120, 180)]
        last = max(i for i, k in enumerate(keys) if k == f"6:{end - 60_000}".encode())
        assert all(keys.index(span) < last for span in spans)  # its final frame shows both
    _assert_minutes_stored(redis, aggregates, settings)


def _assert_minutes_stored(redis: _Redis, aggregates: list[WindowAggregate], settings: Settings) -> None:
    """Each minute's stored frame is the expected one, byte for byte (its publication time aside)."""
    stored = {}
    minutes = {a.window_start_ms for a in aggregates if a.window_s == 60}
    for r, start in ((r, start) for r in settings.window.resolutions for start in minutes):
        frame = decode_frame(redis.kv[store_keys.frame_key(r, start)])
        frame.published_ms = 0
        stored[(r, start)] = encode_frame(frame)
    assert not (diff := frames_diff(stored, expected_frames(aggregates, settings))), diff


def test_a_minute_stored_early_then_a_crash_shows_its_longer_window_after_the_replay() -> None:
    settings = Settings(kafka={"partitions": 2}, window=SPANS)
    raw = make_raw_events(persons=80, minutes=4, late=0)
    aggregates = run_engine(split_records([to_clean(r, settings) for r in raw], 2, 7), settings)
    last = max((a for a in aggregates if a.window_s == 120), key=lambda a: a.window_start_ms)
    end = last.window_end_ms
    minute = next(a for a in aggregates if a.window_s == 60 and a.window_end_ms == end)
    before = [a for a in aggregates if a.window_end_ms <= end]

    async def send(key: bytes, value: bytes) -> None:
        pass

    redis = _Redis()  # the minute ending with the span stored, then the crash: the span never was
    with pytest.raises(_Crash):
        asyncio.run(_SpanGateCrashes(redis, settings, end).publish_all(before))
    shown = decode_frame(redis.kv[store_keys.frame_key(6, minute.window_start_ms)]).spans["payments"]
    assert shown == [last.window_start_ms - 120_000, last.window_start_ms]  # the one before
    replay = ReleaseSink(redis, send, settings, clock_ms=lambda: 1)  # the release book hands both again
    asyncio.run(replay.publish_all([last, minute]))
    want = expected_frames([a for a in aggregates if a.window_end_ms <= end], settings)
    for r in settings.window.resolutions:
        frame = decode_frame(redis.kv[store_keys.frame_key(r, minute.window_start_ms)])
        frame.published_ms = 0
        assert encode_frame(frame) == want[(r, minute.window_start_ms)]
    minutes = sum(a.window_s == 60 for a in before)  # the regated minute is counted complete once
    assert redis.hashes[store_keys.STATS_KEY]["windows_complete"] == minutes


def test_views_totals_and_manifest_say_the_window_of_each_layer() -> None:
    spans = {"population": [120_000, 180_000], "payments": [0, 900_000]}
    frame = Frame(v=1, window_start_ms=120_000, window_s=60, res=8, published_ms=0,
                  privacy=FramePrivacy(10, False, 0.0), cells={}, spans=spans)  # fmt: skip
    view = make_view(8, ["population"], resolutions=[8])
    assert view_frame(frame, view)["spans"] == {"population": [120_000, 180_000]}
    assert window_totals(frame)["spans"] == spans
    w = Settings().window
    manifest = build_manifest(
        PrivacySettings(), window_s=60, resolutions=[8], layer_windows_s=w.layer_windows_s
    )
    assert manifest["layer_windows_s"]["payments"] == 900 and manifest["window_s"] == 60
    assert msgspec.json.decode(msgspec.json.encode(manifest))["layer_windows_s"]["population"] == 60
