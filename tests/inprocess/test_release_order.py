"""The release agent books partials-topic records in offset order: a record Faust fetched and never
delivered is read again, whether records follow it (a hole, also right after a restart) or not (the
topic's last record). Seen in CI: a restarted worker lost the first partials record it fetched, a
partition's partial of the open window; the progress record after it completed the window, which was
released without that partition."""

from __future__ import annotations

import pytest

from cityscreen.aggregate.partial import decode_message
from cityscreen.release_book import DictBookLog
from streams.release_agent import ReleaseAgent
from tests.inprocess import test_release_path as path
from tests.inprocess.test_release_path import Feed, Screen


@pytest.fixture(scope="module")
def feed() -> Feed:
    return path._feed()


@pytest.fixture(scope="module")
def partials(feed: Feed) -> list[bytes]:
    return path._partials(feed)


class Seeks:
    """The partials topic's partition as the agent sees it: records its seeks."""

    def __init__(self) -> None:
        self.offsets: list[int] = []
        self.warnings: list[str] = []

    async def __call__(self, offset: int) -> None:
        self.offsets.append(offset)


def _agent(screen: Screen, log: DictBookLog, seeks: Seeks) -> ReleaseAgent:
    agent = screen.agent(log)
    agent.seek, agent.warn = seeks, seeks.warnings.append
    return agent


def _first_partial_after(values: list[bytes], start: int) -> int:
    """The offset of the first record from `start` on that carries a partial (not only progress)."""
    return next(i for i in range(start, len(values)) if decode_message(values[i]).partial is not None)


async def test_a_record_lost_after_a_restart_is_read_again_and_every_window_is_exact(
    feed: Feed, partials: list[bytes]
) -> None:
    _, expected = feed
    screen, log, seeks = Screen(), DictBookLog(), Seeks()
    half = len(partials) // 2
    before = _agent(screen, log, seeks)
    await before.on_records(list(enumerate(partials))[:half], now=0.0)
    await before.settled()
    del before  # SIGKILL after committing the first half: only the log is left
    lost = _first_partial_after(partials, half)
    after = _agent(screen, log, seeks)
    await after.on_records([(o, partials[o]) for o in range(lost + 1, len(partials))], now=1.0)
    await after.settled()
    assert seeks.offsets == [half], "the hole went unnoticed: windows were released without a partial"
    assert f"seeking back to {half}" in seeks.warnings[0]
    assert all(screen.frames[k] == expected[k] for k in screen.frames)  # whatever went out is exact
    await after.on_records([(o, partials[o]) for o in range(half, len(partials))], now=2.0)  # re-read
    await after.settled()
    assert screen.frames == expected and sorted(screen.sent) == sorted(expected)


async def test_without_the_guard_the_same_loss_releases_a_wrong_window(
    feed: Feed, partials: list[bytes]
) -> None:
    """The failure the guard prevents, shown on the same input: booked regardless of offsets, the
    window of the lost partial is released, and differs from the reference."""
    _, expected = feed
    screen = Screen()
    agent = screen.agent(DictBookLog())
    lost = _first_partial_after(partials, len(partials) // 2)
    agent.on_batch(partials[:lost] + partials[lost + 1 :])
    await agent.settled()
    assert screen.frames != expected


async def test_a_lost_last_record_is_read_again_once_the_agent_stalls(partials: list[bytes]) -> None:
    screen, seeks = Screen(), Seeks()
    agent = _agent(screen, DictBookLog(), seeks)
    end = len(partials)
    await agent.on_records(list(enumerate(partials))[:-1], now=0.0)  # the last one never delivered
    for now in (0.0, 5.0, 10.0, 15.0):
        await agent.check_stall(now, end)
    assert seeks.offsets == []  # not yet: records may still be on their way
    await agent.check_stall(25.0, end)
    assert seeks.offsets == [end - 1] and "release agent stalled" in seeks.warnings[-1]
    await agent.on_records([(end - 1, partials[-1])], now=26.0)
    await agent.check_stall(30.0, end)
    await agent.check_stall(60.0, end)
    assert seeks.offsets == [end - 1]  # read to the end: nothing more to do
    await agent.settled()
