"""A window gated in shards of its blocks (cityscreen/privacy/shards.py), in the worker's gate processes,
releases byte for byte the frames of the window gated whole: thresholds, repairs and protection programs,
DP noise and flows alike."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from cityscreen.aggregates import WindowAggregate
from cityscreen.frames import encode_frame
from cityscreen.geo import parent_of
from cityscreen.privacy import release
from cityscreen.privacy.decided import DECIDED
from cityscreen.privacy.shards import block_weights, merge_frames, shard_blocks, shard_of
from cityscreen.privacy.synthetic import synthetic_windows
from cityscreen.settings import PrivacySettings, Settings
from streams.release import ReleaseSink


@pytest.fixture(scope="module")
def window() -> WindowAggregate:
    return synthetic_windows(persons=3_000, windows=1, seed=11)[0].aggregate


def _encoded(frames: list) -> list[bytes]:  # type: ignore[type-arg]
    return [encode_frame(f) for f in frames]


@pytest.mark.parametrize("shards", [2, 3])
@pytest.mark.parametrize(
    ("k", "dp", "stock"), [(10, False, False), (20, False, False), (10, True, False), (10, False, True)]
)
def test_the_shards_release_what_the_whole_window_releases(
    window: WindowAggregate, shards: int, k: int, dp: bool, stock: bool
) -> None:
    privacy = PrivacySettings(min_persons=k, dp_enabled=dp, stock_noise=stock)
    whole = release(window, privacy, published_ms=7)
    DECIDED.clear()  # the shards solve their groups' programs, not the answers the whole window left
    parts = [release(shard_of(window, i, shards), privacy, published_ms=7) for i in range(shards)]
    assert _encoded(merge_frames(parts)) == _encoded(whole)
    assert any(v is None for f in whole for keys in f.cells.values() for v in keys.values())
    assert all(any(f.cells for f in part) for part in parts), "every shard must hold some blocks"
    assert whole[0].flows and not any(f.flows for part in parts[1:] for f in part)


def test_a_block_lies_in_one_shard_and_the_shards_are_about_even(window: WindowAggregate) -> None:
    owner = shard_blocks(window, 2)
    coarsest = min(window.cells)
    seen: dict[str, set[int]] = {}
    for i in range(2):
        for cells in shard_of(window, i, 2).cells.values():
            for cell in cells:
                seen.setdefault(parent_of(cell, coarsest), set()).add(i)
    assert all(shards == {owner[block]} for block, shards in seen.items())
    weight = block_weights(window)
    loads = [sum(w for b, w in weight.items() if owner[b] == i) for i in range(2)]
    assert abs(loads[0] - loads[1]) <= max(weight.values())  # greedy, heaviest first: within one block
    assert shard_blocks(window, 2) == owner  # every gate process works out the same split


async def test_the_sink_gates_a_window_in_shards_across_its_gate_pool(window: WindowAggregate) -> None:
    async def send(key: bytes, value: bytes) -> None:
        raise AssertionError("not reached")

    settings = Settings()
    assert settings.privacy.gate_processes == 2
    direct = _encoded(release(window, settings.privacy, published_ms=123))
    with ThreadPoolExecutor(max_workers=2) as pool:
        sink = ReleaseSink(None, send, settings, clock_ms=lambda: 123, gate_pool=pool)
        assert sink.shards == 2
        pooled = _encoded((await sink._gate(window, None))[0])
    assert pooled == direct


def test_the_gate_across_time_is_not_sharded() -> None:
    settings = Settings(privacy=PrivacySettings(across_time=True))
    with ThreadPoolExecutor(max_workers=2) as pool:
        assert ReleaseSink(None, None, settings, gate_pool=pool).shards == 1  # type: ignore[arg-type]
