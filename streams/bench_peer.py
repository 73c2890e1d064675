"""The textbook Faust peer: one event per record, iterated one by one, one table update per event.

The shape the faust-streaming documentation teaches, doing the benchmark's binning (H3 cell at the base
resolution x event-time window, counted in a table). Run as its own process by the pipeline benchmark
(services/bench/pipeline.py, which owns the topic): `python -m streams.bench_peer TOPIC STATUS_FILE`; it
writes how many events it processed and when to STATUS_FILE once a second (JSON), and runs until stopped.
It lives in streams/ because it is a Faust app: services/ do not import Faust (pyproject.toml contracts).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import faust
import h3

from cityscreen.settings import Settings

PEER_APP_ID = "cityscreen-bench-peer"


def build_peer(settings: Settings, topic_name: str, status_file: Path) -> faust.App:
    app = faust.App(
        PEER_APP_ID,
        broker=f"kafka://{settings.kafka.bootstrap}",
        store="memory://",
        topic_partitions=settings.kafka.partitions,
        web_enabled=False,
        datadir=str(settings.data_dir / "faust" / PEER_APP_ID),
    )
    topic = app.topic(topic_name, value_serializer="json")
    counts = app.Table("peer-counts", default=int, partitions=settings.kafka.partitions)
    res, window_ms = settings.window.h3_res, settings.window.window_s * 1000
    seen = {"events": 0, "first_ms": 0, "last_ms": 0}

    @app.agent(topic)
    async def bin_events(stream: Any) -> None:
        async for event in stream:
            cell = h3.latlng_to_cell(event["lat"], event["lng"], res)
            ts = event["ts_ms"]
            counts[f"{cell}|{ts - ts % window_ms}"] += 1
            if not seen["events"]:
                seen["first_ms"] = int(time.time() * 1000)
            seen["events"] += 1
            seen["last_ms"] = int(time.time() * 1000)

    @app.timer(interval=1.0)  # type: ignore[untyped-decorator]  # Faust has no annotations
    async def report() -> None:
        tmp = status_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(seen))
        os.replace(tmp, status_file)

    return app


def main() -> None:
    topic_name, status_file = sys.argv[1], Path(sys.argv[2])
    del sys.argv[1:]  # Faust's worker reads argv
    app = build_peer(Settings(), topic_name, status_file)
    faust.Worker(app, loglevel="WARNING").execute_from_commandline()


if __name__ == "__main__":
    main()
