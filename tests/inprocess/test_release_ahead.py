"""Windows gated ahead of their close: the aggregate agent of a live feed sends speculative partials a few
seconds after each window's end, the release agent gates them at once and keeps the frames, and the
complete window takes them only when its partials are the same. What is published never changes."""

from __future__ import annotations

import asyncio

import pytest

from cityscreen.aggregate.partial import decode_header
from cityscreen.frames import Frame, FramePrivacy
from cityscreen.release_book import DictBookLog, Release
from streams.gate_ahead import GateAhead
from streams.release_agent import ReleaseAgent
from tests.inprocess.test_release_path import Feed, Harness, Screen, _feed

Live = tuple[list[bytes], Feed]


def _speculative(values: list[bytes]) -> list[bytes]:
    return [v for v in values if decode_header(v).speculative]


async def _live_partials(feed: Feed) -> list[bytes]:
    """The agent's partials with its clock at the newest event it applied: a live feed."""
    harness = Harness(feed[0])
    states = harness.agent.engine.states

    def wall_ms() -> float:
        marks = [ms for st in states.values() for ms in st.watermark_ms.values()]
        return float(max(marks, default=0))

    harness.agent.wall_ms = wall_ms
    records = feed[0]
    for record in records:
        await harness.agent.on_batch([record])
    harness.agent.wall_ms = lambda: wall_ms() + 3_600_000  # an hour later: the idle close ends the feed
    harness.clock.now_s += 3600
    await harness.agent.tick()
    return harness.partials


@pytest.fixture(scope="module")
def live() -> Live:
    feed = _feed(per_record=2)  # a record's events span a few seconds, as a live feed's batches do
    return asyncio.run(_live_partials(feed)), feed


def _speculated_by_every_partition(partials: list[bytes]) -> set[int]:
    """The windows every partition of the feed sent a speculative partial for: those the release agent
    can gate ahead (it waits for all partitions, as for a complete window)."""
    heads = [decode_header(v) for v in partials]
    partitions = {h.partition for h in heads}
    by_window: dict[int, set[int]] = {}
    for h in heads:
        if h.speculative and h.window_start_ms is not None:
            by_window.setdefault(h.window_start_ms, set()).add(h.partition)
    return {w for w, sent in by_window.items() if sent == partitions}


def _counts(screen: Screen) -> dict[str, int]:
    return {k: int(v) for k, v in screen.redis.hashes.get("city:stats", {}).items()}


async def _publish(screen: Screen, values: list[bytes], log: DictBookLog | None = None) -> ReleaseAgent:
    agent = screen.agent(log or DictBookLog())
    for i in range(0, len(values), 3):
        agent.on_batch(values[i : i + 3])
        await screen.sink.ahead.settled()  # the gate ahead finishes within the grace, before the close
    await agent.settled()
    return agent


async def test_a_live_feeds_windows_are_gated_ahead_and_published_as_the_reference(live: Live) -> None:
    partials, (_, expected) = live
    speculative = _speculative(partials)
    assert speculative and len(speculative) < len(partials)
    screen = Screen()
    agent = await _publish(screen, partials)
    assert agent.speculation.state.partials == {} and len(screen.sink.ahead) == 0  # none left behind
    assert screen.frames == expected and sorted(screen.sent) == sorted(expected)
    counts = _counts(screen)
    ahead = _speculated_by_every_partition(partials)
    # every window whose partitions all ran 10 s past its end while it was open (how many depends on how
    # the feed's persons fall into partitions); the rest closed with their partitions, unspeculated
    assert counts["windows_taken_ahead"] == len(ahead) >= 2 and counts["windows_published"] > len(ahead)
    assert counts["windows_gated_ahead"] >= counts["windows_taken_ahead"]
    assert counts.get("windows_missed_ahead", 0) == 0


async def test_speculative_partials_alone_publish_nothing_and_never_enter_the_book(live: Live) -> None:
    partials, _ = live
    screen, log = Screen(), DictBookLog()
    await _publish(screen, _speculative(partials), log)
    assert _counts(screen).get("windows_gated_ahead", 0) >= 2
    assert screen.sent == [] and _counts(screen).get("windows_published", 0) == 0
    assert [k for k in log.data if k.startswith("part/")] == []
    assert screen.redis.hashes.get("city:stats", {}).get("windows_gated") is None


async def test_windows_whose_partials_changed_after_the_speculation_are_gated_again(live: Live) -> None:
    """Speculative partials of other events (as if every window had a late event after them): each
    complete window is gated from its own partials, and the frames are the reference's."""
    partials, _ = live
    other = _feed(seed=8, per_record=2)
    final = [v for v in await _live_partials(other) if not decode_header(v).speculative]
    screen = Screen()
    await _publish(screen, _speculative(partials) + final)
    assert screen.frames == other[1]
    counts = _counts(screen)
    assert counts["windows_missed_ahead"] >= 2 and counts.get("windows_taken_ahead", 0) == 0


def _frame(start_ms: int) -> Frame:
    return Frame(1, start_ms, 60, 8, 0, FramePrivacy(10, False, 0.0), {})


async def test_a_failed_gate_ahead_is_gated_again_and_the_kept_windows_are_bounded() -> None:
    counted: list[dict[str, int]] = []
    now, gated_a = [_frame(0)], [_frame(60_000)]

    async def count(**counters: int) -> None:
        counted.append(counters)

    async def gate(parts: list[bytes]) -> tuple[list[Frame], bytes | None]:
        if parts == [b"bad"]:
            raise RuntimeError("the gate process died")
        return gated_a, None

    async def gate_now() -> tuple[list[Frame], bytes | None]:
        return now, None

    ahead = GateAhead(gate, count, kept=2)
    ahead.start([(Release(0, 0), [b"bad"]), (Release(60_000, 0), [b"a"])])
    await ahead.settled()
    taken = await ahead.take_or_gate(Release(0, 0), [b"bad"], gate_now)
    assert taken == ((now, None), {"windows_missed_ahead": 1})
    taken = await ahead.take_or_gate(Release(60_000, 0), [b"a"], gate_now)
    assert taken == ((gated_a, None), {"windows_taken_ahead": 1})
    assert await ahead.take_or_gate(Release(60_000, 0), [b"a"], gate_now) == ((now, None), {})  # taken once
    ahead.start([(Release(s * 60_000, 0), [b"x"]) for s in range(2, 6)])
    assert len(ahead) == 2  # the two newest kept
    await ahead.settled()
    assert sum(c.get("windows_gated_ahead", 0) for c in counted) == 5


async def test_a_minute_is_gated_ahead_before_the_quarter_hour_that_ends_with_it() -> None:
    """The release book gives a span before the base window of its end; their gates ahead start the
    other way round, so that the minute does not queue behind the longer window in the gate pool."""
    order: list[list[bytes]] = []

    async def count(**counters: int) -> None:
        pass

    async def gate(parts: list[bytes]) -> tuple[list[Frame], bytes | None]:
        order.append(parts)
        return [], None

    ahead = GateAhead(gate, count)
    ahead.start([(Release(0, 900), [b"quarter"]), (Release(840_000, 0), [b"minute"])])
    await ahead.settled()
    assert order == [[b"minute"], [b"quarter"]]
