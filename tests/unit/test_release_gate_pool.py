"""The gate run in the worker's gate process (packed aggregate in, packed frames out) gives exactly the
frames of the gate called in process."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from cityscreen import store_keys
from cityscreen.aggregates import WindowAggregate
from cityscreen.frames import encode_frame
from cityscreen.privacy import release
from cityscreen.settings import PrivacySettings, Settings
from streams.release import ReleaseSink
from tests.support.factories import SIBLINGS, crowd, make_aggregate

P = ParamSpec("P")
T = TypeVar("T")


def _aggregate() -> WindowAggregate:
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
        pooled = [encode_frame(f) for f in (await sink._gate(aggregate, None))[0]]
    assert pooled == direct
    assert any(b"null" in f for f in direct), "the aggregate must exercise suppression"
    assert any(b'"payments.amount_cny' in f for f in direct)


class _Redis:
    """The few Redis calls the sink makes, in memory."""

    def __init__(self) -> None:
        self.kv: dict[str, bytes] = {}
        self.zsets: dict[str, dict[str, float]] = {}
        self.hashes: dict[str, dict[str, int]] = {}

    async def zscore(self, key: str, member: str) -> float | None:
        return self.zsets.get(key, {}).get(member)

    async def get(self, key: str) -> bytes | None:
        return self.kv.get(key)

    async def set(self, key: str, value: bytes, ex: int | None = None) -> None:
        self.kv[key] = value

    async def publish(self, channel: str, message: str) -> None:
        pass

    def pipeline(self, transaction: bool = False) -> _Redis._Pipe:
        return _Redis._Pipe(self)

    class _Pipe:
        def __init__(self, redis: _Redis) -> None:
            self.redis, self.ops = redis, []  # type: ignore[var-annotated]

        def set(self, key: str, value: bytes, ex: int | None = None) -> None:
            self.redis.kv[key] = value

        def zadd(self, key: str, mapping: dict[str, float]) -> None:
            self.redis.zsets.setdefault(key, {}).update(mapping)

        def zremrangebyscore(self, key: str, low: str, high: float) -> None:
            pass

        def hincrby(self, key: str, field: str, n: int) -> None:
            counters = self.redis.hashes.setdefault(key, {})
            counters[field] = counters.get(field, 0) + n

        async def execute(self) -> None:
            pass


class _TogetherPool(ThreadPoolExecutor):
    """A pool whose tasks each wait until two have started: gating one window after the other fails."""

    def __init__(self) -> None:
        super().__init__(max_workers=2)
        self.barrier = threading.Barrier(2, timeout=10)

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        def together() -> T:
            self.barrier.wait()
            return fn(*args, **kwargs)

        return super().submit(together)


async def test_windows_completed_together_are_gated_in_parallel_and_stored_in_window_order() -> None:
    sent: list[bytes] = []

    async def send(key: bytes, value: bytes) -> None:
        sent.append(key)

    settings = Settings(privacy=PrivacySettings(gate_processes=1))  # one job per window, not shards
    first, second = _aggregate(), _aggregate()
    second.window_start_ms = first.window_start_ms + 60_000
    redis = _Redis()
    with _TogetherPool() as pool:
        sink = ReleaseSink(redis, send, settings, clock_ms=lambda: 123, gate_pool=pool)
        published = await sink.publish_all([second, first])
        again = await sink.publish_all([first])
    assert [len(frames) for frames in published] == [3, 3] and again == [[]]
    # each window gated once (the replay is not gated again), its gate time counted for /metrics
    stats = redis.hashes[store_keys.STATS_KEY]
    assert stats["windows_gated"] == stats["windows_published"] == 2 and "gate_ms" in stats
    assert stats["windows_complete"] == 2  # when each came complete to the sink; the replay not again
    windows = [int(k.split(b":")[1]) for k in sent]
    assert windows == sorted(windows) and set(windows) == {first.window_start_ms, second.window_start_ms}
    # the second window's fused indicators saw the first window's frame (stored before it was fused)
    changes = [["population_change" in ind for ind in f.fused.values()] for f in published[0] + published[1]]
    assert not any(any(c) for c in changes[:3]) and all(any(c) for c in changes[3:])
