"""The columnar send loop: records and lines hold exactly the engine's events, counted per kind."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import datetime
from pathlib import Path

from cityscreen.city import load_city
from cityscreen.events import decode_raw_many
from services.generator.columnar.engine import Engine
from services.generator.feed import NullSink, pump_engine
from services.generator.fixtures import read_events
from services.generator.run import Pace
from services.generator.sinks import FileSink

CITY = load_city()
START = int(datetime.fromisoformat("2026-11-17T07:50:00+08:00").timestamp() * 1000)


class CaptureSink(NullSink):
    def __init__(self) -> None:
        super().__init__()
        self.by_kind: dict[str, list[bytes]] = {}

    async def send_records(self, kind: str, records: list[bytes]) -> None:
        await super().send_records(kind, records)
        self.by_kind.setdefault(kind, []).extend(records)


def test_records_hold_the_engines_events_in_batches() -> None:
    sink = CaptureSink()
    report = asyncio.run(pump_engine(Engine(CITY, 2000, 5), START, 1200, sink, Pace(), batch_events=50))
    expected = list(Engine(CITY, 2000, 5).events(START, 1200))
    sent = {k: [e for r in records for e in decode_raw_many(r)] for k, records in sink.by_kind.items()}
    assert all(len(decode_raw_many(r)) <= 50 for records in sink.by_kind.values() for r in records)
    for kind, events in sent.items():
        assert events == [e for e in expected if str(e.__struct_config__.tag) == kind]
    assert report.events == len(expected) == sum(report.by_kind.values())
    assert report.by_kind == dict(Counter(str(e.__struct_config__.tag) for e in expected))


def test_lines_are_the_events_in_time_order_and_stop_at_max_events(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl.gz"
    report = asyncio.run(
        pump_engine(Engine(CITY, 2000, 5), START, 1200, FileSink(path), Pace(), max_events=700)
    )
    expected = list(Engine(CITY, 2000, 5).events(START, 1200))[:700]
    assert report.events == 700 and list(read_events(path)) == expected
