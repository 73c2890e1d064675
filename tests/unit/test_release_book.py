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
from cityscreen.frames import encode_frame
from cityscreen.privacy import release
from cityscreen.release_book import Release, ReleaseBook, finalize_window
from cityscreen.settings import Settings
from streams.release import ReleaseSink
from tests.support.streams_support import ONE_WINDOW, make_raw_events, split_records, to_clean
from tests.unit.test_release_gate_pool import _Redis

SETTINGS = Settings(kafka={"partitions": 2}, window=ONE_WINDOW)


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
    async def send(key: bytes, value: bytes) -> None:
        pass

    parts = _partials()
    book = ReleaseBook(2, window_s=60)
    for w in sorted(parts):
        for p, part in sorted(parts[w].items()):
            book.add(decode_header(_head(p, w, part)))
    complete = book.take_complete()
    assert len(complete) == len(parts) >= 3
    with ThreadPoolExecutor(max_workers=2) as pool:
        sink = ReleaseSink(_Redis(), send, SETTINGS, clock_ms=lambda: 123, gate_pool=pool)
        stored = await sink.release(complete)
    for w in sorted(parts):
        merged = merge_partials(parts[w][p] for p in sorted(parts[w]))
        assert merged is not None
        direct = release(finalize_window(merged, SETTINGS), SETTINGS.privacy, published_ms=123)
        # the sink adds fused indicators and its own published_ms when it stores
        for frame in stored[Release(w, 0)]:
            frame.fused, frame.published_ms = {}, 123
        assert [encode_frame(f) for f in stored[Release(w, 0)]] == [encode_frame(f) for f in direct]
