"""The workers' Faust app writes as a replicated cluster needs: acks=all and idempotence, topics replicated
as the settings say (docs/operations.md)."""

from __future__ import annotations

from pathlib import Path

from cityscreen.settings import KafkaSettings, Settings
from streams.app import create_app


async def test_the_worker_producer_is_idempotent_with_acks_all(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, kafka=KafkaSettings(replication_factor=3))
    app = create_app(settings)
    # the aiokafka producer Faust would start (not connected); a private method Faust's types leave out
    client = app.producer._new_producer()  # type: ignore[attr-defined]
    try:
        assert client._txn_manager is not None, "idempotence is off"  # aiokafka's idempotent state
        assert app.conf.producer_acks == -1
        assert app.conf.topic_replication_factor == 3
    finally:
        await client.stop()


def test_the_worker_reads_no_standby_changelogs(tmp_path: Path) -> None:
    # the memory store restores a partition that turns active from the changelog's start: a standby copy
    # is dropped unused, and the standby-to-active hand-over once hung a recovery (streams/app.py)
    app = create_app(Settings(data_dir=tmp_path))
    assert app.conf.table_standby_replicas == 0
