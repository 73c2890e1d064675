"""The Faust application factory: one app per worker process, built from the settings."""

from __future__ import annotations

import faust

from cityscreen.settings import Settings
from streams.internal_topics import MAX_RECORD_BYTES


def create_app(settings: Settings, *, app_id: str = "cityscreen") -> faust.App:
    datadir = settings.data_dir / "faust" / app_id
    datadir.parent.mkdir(parents=True, exist_ok=True)  # Faust creates only the last level
    return faust.App(
        app_id,
        broker=f"kafka://{settings.kafka.bootstrap}",
        store="memory://",
        topic_partitions=settings.kafka.partitions,
        topic_allow_declare=True,
        web_enabled=False,
        datadir=str(datadir),
        producer_max_request_size=MAX_RECORD_BYTES,  # frames can exceed 1 MB (streams/internal_topics.py)
    )
