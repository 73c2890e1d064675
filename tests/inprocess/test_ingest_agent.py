"""The ingest agent in-process (Faust test_context): records in, clean batches, dead letters, counters."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator

import faust
import msgspec
import pytest

from cityscreen.events import RawSim, SimEvent, decode_clean_many, encode, encode_many, partition_for
from cityscreen.ingest_batch import BatchResult
from cityscreen.settings import Settings
from streams.ingest import build_ingest
from tests.support.factories import raw_event
from tests.support.waiting import wait_for_async


def make_sim(n: int, **overrides: object) -> RawSim:
    fields: dict[str, object] = dict(
        event_id=f"e{n}",
        ts_ms=int(time.time() * 1000),
        imsi=f"4600012345{n:05d}",
        msisdn=f"861380000{n:04d}",
        lat=22.54,
    )
    return raw_event("sim", **(fields | overrides))


Harness = tuple[faust.App, list[BatchResult], Counter[str]]


def close_consumer_loop(app: faust.App) -> None:
    """Close the event loop of the app's consumer thread, if `test_context` made one.

    `test_context` builds the app's consumer, whose thread owns an event loop that never starts, so
    nothing closes it; its self-pipe socket was then collected in whichever test ran next
    (ResourceWarning, an error under filterwarnings). Private attributes: Faust has no public handle."""
    thread = getattr(getattr(app, "_consumer", None), "_thread", None)
    loop = getattr(thread, "thread_loop", None)
    if isinstance(loop, asyncio.AbstractEventLoop) and not loop.is_running() and not loop.is_closed():
        loop.close()


@pytest.fixture
def harness() -> Iterator[Harness]:
    app = faust.App("test-ingest", broker="kafka://127.0.0.1:1", store="memory://", web_enabled=False)
    published: list[BatchResult] = []
    counted: Counter[str] = Counter()

    async def publish(result: BatchResult) -> None:
        published.append(result)

    async def count(counts: Counter[str]) -> None:
        counted.update(counts)

    settings = Settings(window={"flush_s": 0.05}, generator={"batch_events": 500})
    app.conf.ingest_agent = build_ingest(app, settings, publish=publish, count=count)
    yield app, published, counted
    close_consumer_loop(app)


async def test_agent_splits_valid_from_bad_and_counts_once_per_batch(harness: Harness) -> None:
    app, published, counted = harness
    good = [make_sim(i) for i in range(20)]
    records = [
        encode_many(good[:10]),
        b"\x00\xffnot json 460001234567890",
        encode_many([*good[10:15], make_sim(99, lat=40.0)]),  # one element outside the city
        encode(good[15]),
        encode_many(good[16:]),
    ]
    async with app.conf.ingest_agent.test_context() as agent:
        for value in records:
            await agent.put(value, partition=0)
        await wait_for_async(
            lambda: counted["ingest.accepted"] + sum(len(r.dead) for r in published) >= 22,
            timeout_s=10,
            what="22 elements accepted or dead-lettered",
        )
    assert counted["ingest.accepted"] == 20
    assert counted["deadletter.malformed"] == 1 and counted["deadletter.out_of_city"] == 1
    clean = [e for r in published for evs in r.clean.values() for e in evs]
    assert sorted(e.event_id for e in clean) == sorted(e.event_id for e in good)
    for result in published:
        for (_kind, partition), events in result.clean.items():
            assert all(partition_for(e.person, 4) == partition for e in events)
    letters = [d for r in published for d in r.dead]
    # test_context numbers records from 0 and names a multi-topic source "<internal>"
    assert sorted((d.reason, d.offset) for d in letters) == [("malformed", 1), ("out_of_city", 2)]
    assert "460001234567890" not in msgspec.json.encode(letters).decode()


async def test_clean_output_decodes_with_the_clean_schema(harness: Harness) -> None:
    app, published, counted = harness
    async with app.conf.ingest_agent.test_context() as agent:
        await agent.put(encode_many([make_sim(i) for i in range(5)]), partition=0)
        await wait_for_async(lambda: counted["ingest.accepted"] >= 5, timeout_s=10, what="5 accepted")
    events = [e for r in published for evs in r.clean.values() for e in evs]
    decoded = decode_clean_many(encode_many(events))
    sims = [e for e in decoded if isinstance(e, SimEvent)]
    assert len(sims) == 5 and isinstance(events[0], SimEvent)
    assert [e.age_band for e in sims] == [events[0].age_band] * 5
    assert all(len(e.person) == 20 and "4600012345" not in e.person for e in decoded)


async def test_a_record_that_breaks_the_decoder_loses_nothing_else(harness: Harness) -> None:
    """The outside tester's 10 KB record of nested brackets, between good records of the same batch:
    before, its RecursionError crashed the agent and the batch's good records were acked unpublished."""
    app, published, counted = harness
    good = [make_sim(i) for i in range(10)]
    records = [encode_many(good[:5]), b"[" * 5000 + b"]" * 5000, encode_many(good[5:])]
    async with app.conf.ingest_agent.test_context() as agent:
        for value in records:
            await agent.put(value, partition=0)
        await wait_for_async(
            lambda: counted["ingest.accepted"] + counted["deadletter.too_deep"] >= 11,
            timeout_s=10,
            what="11 elements accepted or too deep",
        )
    clean = [e for r in published for evs in r.clean.values() for e in evs]
    assert sorted(e.event_id for e in clean) == sorted(e.event_id for e in good)
    assert [(d.reason, d.offset) for r in published for d in r.dead] == [("too_deep", 1)]


async def test_a_failed_publish_is_retried_before_the_batch_is_acked(monkeypatch: pytest.MonkeyPatch) -> None:
    """The agent returns to take_events (which acks the batch) only once `publish` succeeded."""
    monkeypatch.setattr("streams.ingest.PUBLISH_RETRY_S", (0.0,))
    app = faust.App("test-ingest-retry", broker="kafka://127.0.0.1:1", store="memory://", web_enabled=False)
    attempts: list[int] = []
    published: list[BatchResult] = []

    async def publish(result: BatchResult) -> None:
        attempts.append(len(result.dead) + sum(len(v) for v in result.clean.values()))
        if len(attempts) < 3:
            raise ConnectionError("broker unreachable")
        published.append(result)

    settings = Settings(window={"flush_s": 0.05}, generator={"batch_events": 500})
    ingest = build_ingest(app, settings, publish=publish)
    async with ingest.test_context() as agent:
        await agent.put(encode_many([make_sim(i) for i in range(4)]), partition=0)
        await wait_for_async(lambda: bool(published), timeout_s=10, what="a published result")
    close_consumer_loop(app)
    assert attempts == [4, 4, 4]
    assert sum(len(v) for v in published[0].clean.values()) == 4
