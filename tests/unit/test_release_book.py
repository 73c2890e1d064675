"""The release agent's book and the partials path: a window completes once every partition has closed
it, the first copy of a partition's partial wins, a replay of a released window is ignored, and the gate
process's merge of a window's partials releases exactly the frames of the merged aggregate."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import msgspec

from cityscreen.aggregate.close import AggConfig
from cityscreen.aggregate.engine import DictLog, Engine
from cityscreen.aggregate.partial import (
    Partial,
    PartialMessage,
    decode_header,
    decode_partial,
    encode_message,
    merge_partials,
)
from cityscreen.aggregates import WindowAggregate
from cityscreen.frames import Frame, encode_frame
from cityscreen.privacy.gate import release_series
from cityscreen.release_book import KEPT, DictBookLog, Release, ReleaseBook, finalize_window
from cityscreen.settings import Settings
from streams.release import ReleaseSink
from tests.support.gate_modes import THRESHOLD, threshold
from tests.support.streams_support import ONE_WINDOW, make_raw_events, split_records, to_clean
from tests.unit.test_release_gate_pool import _Redis

SETTINGS = Settings(kafka={"partitions": 2}, window=ONE_WINDOW)
# the gate across time in threshold mode (exact values on every layer), and threshold mode without it
ACROSS_TIME = SETTINGS.model_copy(update={"privacy": threshold(across_time=True)})
FORGETFUL = SETTINGS.model_copy(update={"privacy": THRESHOLD})


def _partials() -> dict[int, dict[int, Partial]]:
    """window -> partition -> partial, from the real engine over a small feed."""
    engine = Engine(AggConfig.from_settings(SETTINGS), DictLog(), clock=lambda: 0.0)
    raw = make_raw_events(persons=60, minutes=3, late=0)
    for p, kind, offset, evs in split_records([to_clean(r, SETTINGS) for r in raw], 2, 9):
        engine.apply_events(p, kind, offset, evs)
    engine.persist()
    out: dict[int, dict[int, Partial]] = {}
    for closed in engine.close_due(idle_s=0.0):
        for part in closed.partials:
            out.setdefault(part.window_start_ms, {})[closed.partition] = part
    return out


def _head(partition: int, through: int, partial: Partial | None = None) -> bytes:
    return encode_message(PartialMessage(partition, through, partial))


def test_a_window_completes_when_every_partition_closed_it_and_the_first_copy_wins() -> None:
    parts = _partials()
    w = min(parts)
    book = ReleaseBook(2, window_s=60)
    book.add(decode_header(_head(0, w, parts[w][0])))
    assert book.take_complete() == []  # partition 1 has not closed w yet
    other = msgspec.structs.replace(parts[w][1], late_events=99)
    book.add(decode_header(_head(1, w, parts[w][1])))
    book.add(decode_header(_head(1, w, other)))  # a redelivered, different copy: the first one wins
    [(window, blobs)] = book.take_complete()
    assert window == Release(w, 0) and [decode_partial(b) for b in blobs] == [parts[w][0], parts[w][1]]
    book.add(decode_header(_head(0, w, parts[w][0])))  # a replay of a released window
    assert book.take_complete() == []


async def test_partials_merged_in_the_gate_process_release_the_frames_of_the_merged_aggregate() -> None:
    parts = _partials()
    complete = _complete(parts)
    assert len(complete) == len(parts) >= 3
    with ThreadPoolExecutor(max_workers=2) as pool:
        sink = ReleaseSink(_Redis(), _send, SETTINGS, clock_ms=lambda: 123, gate_pool=pool)
        stored = await sink.release(complete)
    merged = [merge_partials(parts[w][p] for p in sorted(parts[w])) for w in sorted(parts)]
    windows = [finalize_window(m, SETTINGS) for m in merged if m is not None]
    series = release_series(windows, SETTINGS.privacy, published_ms=123)
    for w, (_, direct) in zip(sorted(parts), series, strict=True):
        # the sink adds fused indicators and its own published_ms when it stores
        for frame in stored[Release(w, 0)]:
            frame.fused, frame.published_ms = {}, 123
        assert [encode_frame(f) for f in stored[Release(w, 0)]] == [encode_frame(f) for f in direct]


async def _send(key: bytes, value: bytes) -> None:
    pass


def _complete(parts: dict[int, dict[int, Partial]]) -> list[tuple[Release, list[bytes]]]:
    """Every window of `parts` booked and taken complete, as the release agent hands them to the sink."""
    book = ReleaseBook(2, window_s=60)
    for w in sorted(parts):
        for p, part in sorted(parts[w].items()):
            book.add(decode_header(_head(p, w, part)))
    return book.take_complete()


def _series(parts: dict[int, dict[int, Partial]]) -> list[tuple[WindowAggregate, list[Frame]]]:
    """Each window merged from its partials and released in a row, across time."""
    merged = [merge_partials(parts[w][p] for p in sorted(parts[w])) for w in sorted(parts)]
    windows = [finalize_window(m, SETTINGS) for m in merged if m is not None]
    return list(release_series(windows, ACROSS_TIME.privacy, published_ms=123))


async def test_the_gate_goes_on_from_its_memory_in_the_log_after_a_restart() -> None:
    """Windows of one span are gated with what the gate kept of the one before (privacy across time).
    That memory is in the release book's log: a new sink on the same log (a restart, or the partition's
    new owner) releases the next window exactly as one sink releasing all of them in a row would."""

    parts = _partials()
    complete = _complete(parts)
    log = DictBookLog()
    first = ReleaseSink(_Redis(), _send, ACROSS_TIME, clock_ms=lambda: 123, kept_log=log)
    stored = await first.release(complete[:-1])
    assert any(k.startswith(KEPT) for k in log.data), "the gate's memory is kept in the log"
    redis = _Redis()
    second = ReleaseSink(redis, _send, ACROSS_TIME, clock_ms=lambda: 123, kept_log=log)
    stored |= await second.release(complete[-1:])
    for w, (_, direct) in zip(sorted(parts), _series(parts), strict=True):
        for frame in [*stored[Release(w, 0)], *direct]:
            frame.fused, frame.published_ms = {}, 123
        assert [encode_frame(f) for f in stored[Release(w, 0)]] == [encode_frame(f) for f in direct]
    forgetful = ReleaseSink(_Redis(), _send, FORGETFUL, clock_ms=lambda: 123)  # across_time off
    alone = (await forgetful.release(complete[-1:]))[Release(sorted(parts)[-1], 0)]
    for frame in alone:
        frame.fused, frame.published_ms = {}, 123
    assert [encode_frame(f) for f in alone] != [encode_frame(f) for f in direct], "memory changed it"


async def test_a_replay_rebuilds_the_memory_a_crash_lost() -> None:
    """A crash after a window is stored but before the gate's memory of it is written: on the replay
    the window is published already, so it is not stored again, but it is gated again for its memory,
    and the windows after it come out as if nothing had happened."""

    parts = _partials()
    complete = _complete(parts)
    log, redis = DictBookLog(), _Redis()
    sink = ReleaseSink(redis, _send, ACROSS_TIME, clock_ms=lambda: 123, kept_log=log)
    await sink.release(complete[:1])
    snapshot = dict(log.data)
    await sink.release(complete[1:2])
    log.data = snapshot  # the memory of the second window was lost, its frames were stored
    again = ReleaseSink(redis, _send, ACROSS_TIME, clock_ms=lambda: 123, kept_log=log)
    stored = await again.release(complete[1:])
    assert Release(sorted(parts)[1], 0) not in stored, "a published window is not stored twice"
    for w, (_, direct) in list(zip(sorted(parts), _series(parts), strict=True))[2:]:
        for frame in [*stored[Release(w, 0)], *direct]:
            frame.fused, frame.published_ms = {}, 123
        assert [encode_frame(f) for f in stored[Release(w, 0)]] == [encode_frame(f) for f in direct]
