"""The gate run in the worker's gate process (packed aggregate in, packed frames out) gives exactly the
frames of the gate called in process."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from cityscreen.frames import encode_frame
from cityscreen.privacy import release
from cityscreen.settings import Settings
from streams.release import ReleaseSink
from tests.unit.privacy_helpers import SIBLINGS, crowd, make_aggregate


def _aggregate():  # type: ignore[no-untyped-def]
    placements = {
        SIBLINGS[0]: crowd(40) + crowd(3, "M", "65+", "overseas"),
        SIBLINGS[1]: crowd(25, "M") + crowd(2, "F", "18-24", "hong_kong"),
        SIBLINGS[2]: crowd(12, "F", "35-44", "hunan"),
    }
    payments = [(SIBLINGS[0], p, "food", 10.5 + p * 1.25) for p in range(30)]
    payments += [(SIBLINGS[1], 99, "retail", 1234.56)]  # a dominated amount
    return make_aggregate(placements, payments=payments)


async def test_the_pooled_gate_releases_exactly_what_the_in_process_gate_does() -> None:
    async def send(key: bytes, value: bytes) -> None:
        raise AssertionError("not reached")

    settings = Settings()
    aggregate = _aggregate()
    direct = [encode_frame(f) for f in release(aggregate, settings.privacy, published_ms=123)]
    with ThreadPoolExecutor(max_workers=1) as pool:
        sink = ReleaseSink(None, send, settings, clock_ms=lambda: 123, gate_pool=pool)
        pooled = [encode_frame(f) for f in await sink._gate(aggregate)]
    assert pooled == direct
    assert any(b"null" in f for f in direct), "the aggregate must exercise suppression"
    assert any(b'"payments.amount_cny' in f for f in direct)
