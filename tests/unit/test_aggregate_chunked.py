"""Large state values survive a record-size cap: chunked, generation by generation, crash-safe."""

from __future__ import annotations

import os

from cityscreen.aggregate.chunked import ChunkedLog
from cityscreen.aggregate.engine import DictLog


def test_large_values_round_trip_in_chunks_no_record_over_the_cap() -> None:
    inner = DictLog()
    log = ChunkedLog(inner, chunk_bytes=100)
    big, small = os.urandom(1_050), b"\x81\xa1a\x01"
    log.put(0, "snap", big)
    log.put(0, "d:000000000001", small)
    assert dict(log.items(0)) == {"snap": big, "d:000000000001": small}
    assert max(len(v) for v in inner.data[0].values()) <= 100
    assert len(inner.data[0]) == 11 + 1 + 1  # 11 chunks, the head, the small value


def test_a_new_generation_replaces_the_old_and_deleting_drops_every_chunk() -> None:
    inner = DictLog()
    log = ChunkedLog(inner, chunk_bytes=100)
    log.put(0, "snap", os.urandom(500))
    second = os.urandom(250)
    log.put(0, "snap", second)
    assert dict(log.items(0)) == {"snap": second}
    assert len(inner.data[0]) == 3 + 1  # the first generation's chunks are gone
    log.put(0, "snap", b"small")
    assert inner.data[0] == {"snap": b"small"}
    log.put(0, "snap", None)
    assert inner.data[0] == {}


def test_a_crash_before_the_head_keeps_the_previous_value() -> None:
    inner = DictLog()
    ChunkedLog(inner, chunk_bytes=100).put(0, "snap", first := os.urandom(300))
    inner.put(0, "snap#2#000000", os.urandom(100))  # a newer generation's first chunk, then the crash
    restarted = ChunkedLog(inner, chunk_bytes=100)
    assert dict(restarted.items(0)) == {"snap": first}
    assert "snap#2#000000" not in inner.data[0]  # the orphan chunk is deleted at restore
    assert len(inner.data[0]) == 3 + 1
    restarted.put(0, "snap", third := os.urandom(150))  # the restarted worker writes on
    assert dict(restarted.items(0)) == {"snap": third}
    assert len(inner.data[0]) == 2 + 1
