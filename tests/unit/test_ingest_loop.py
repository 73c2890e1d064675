"""The ingest loop's plain parts (streams.ingest_loop): its consumer's settings and the records it hands to
the validator."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pytest

from cityscreen.settings import Settings
from streams.ingest_loop import _records, consumer_config


def test_the_consumer_commits_only_what_the_loop_published_and_fails_over_as_the_workers_do() -> None:
    settings = Settings.model_validate({"kafka": {"bootstrap": "10.0.0.1:9092", "session_timeout_s": 10.0}})
    config = consumer_config(settings, "cityscreen-ingest")
    assert config["enable.auto.commit"] is False  # at least once: offsets follow delivery, never precede it
    assert config["enable.auto.offset.store"] is True  # the loop commits the positions `consume` handed over
    assert config["group.id"] == "cityscreen-ingest"
    assert config["bootstrap.servers"] == "10.0.0.1:9092"
    assert config["session.timeout.ms"] == 10_000  # the fault suite's quick failover reaches librdkafka
    assert config["heartbeat.interval.ms"] == 3_000
    assert config["auto.offset.reset"] == "earliest"  # a new group starts from the retained backlog


@dataclass
class _Message:
    """What `Consumer.consume` returns: a record, or an error in its place."""

    payload: bytes | None
    failure: str | None = None
    offset_: int = 0

    def value(self) -> bytes | None:
        return self.payload

    def topic(self) -> str:
        return "city.ingest.sim.v1"

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self.offset_

    def error(self) -> str | None:
        return self.failure


def test_a_consumer_error_in_place_of_a_record_is_logged_and_skipped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    taken = [
        _Message(b'{"a":1}', offset_=5),
        _Message(None, failure="KafkaError{code=_TRANSPORT}"),
        _Message(None, offset_=6),  # a tombstone is a record: the validator dead-letters it
    ]
    with caplog.at_level(logging.WARNING, logger="cityscreen.ingest"):
        records = _records(taken)
    assert records == [(b'{"a":1}', "city.ingest.sim.v1", 0, 5), (None, "city.ingest.sim.v1", 0, 6)]
    assert "_TRANSPORT" in caplog.text and "check the broker" in caplog.text
