"""The Faust application factory: one app per worker process, built from the settings."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import faust
from faust.transport.drivers.aiokafka import Producer
from faust.types import ProducerT

from cityscreen.settings import Settings
from streams.internal_topics import MAX_RECORD_BYTES

# Per partition and fetch. A clean record holds 1000 events (~160 KB), so Faust's default 1 MiB let the
# client hold six records per partition: the worker then waited on fetch round trips, and while a close
# kept its event loop busy, nothing more was prefetched. Measured on the 2M bench (one run each way, the
# same loaded data, alternated twice): ours 74.5k / 77.6k events/s with 1 MiB, 94.1k / 95.0k with 16 MiB.
FETCH_BYTES = 16 * 1024 * 1024


class IdempotentProducer(Producer):
    """Faust's producer with idempotence on, which Faust enables only inside transactions (the workers use
    none): a send the client retries after a broker failure is then written once, not twice."""

    def _settings_extra(self) -> dict[str, Any]:
        return {"acks": "all", "enable_idempotence": True}


class App(faust.App):
    _early: list[Callable[[], Awaitable[None]]] | None = None

    def _new_producer(self) -> ProducerT:
        return IdempotentProducer(self.transport, loop=self.loop, beacon=self.beacon)

    def early_task(self, task: Callable[[], Awaitable[None]]) -> None:
        """Run `task` from the app's start. Faust starts its timers and tasks only once the first table
        recovery has completed: too late for one that watches that recovery."""
        self._early = [*(self._early or []), task]

    async def on_start(self) -> None:
        await super().on_start()
        for task in self._early or []:
            self.add_future(task())


def create_app(settings: Settings, *, app_id: str = "cityscreen") -> App:
    datadir = settings.data_dir / "faust" / app_id
    datadir.parent.mkdir(parents=True, exist_ok=True)  # Faust creates only the last level
    return App(
        app_id,
        broker=f"kafka://{settings.kafka.bootstrap}",
        store="memory://",
        # No standby replicas: the memory store drops a standby's copy after each recovery and restores a
        # partition that turns active from the changelog's start anyway, so reading standbys bought
        # nothing; and the standby-to-active hand-over is where a recovery hung for good in CI (the
        # remaining worker of a group of two never restored the partitions it had read as a standby)
        table_standby_replicas=0,
        topic_partitions=settings.kafka.partitions,
        topic_allow_declare=True,
        # the worker's own topics (changelogs, partials) are as replicated as the project's, and its
        # writes wait for every in-sync replica: a broker's loss then loses no state and no frame
        topic_replication_factor=settings.kafka.replication_factor,
        producer_acks=-1,
        web_enabled=False,
        datadir=str(datadir),
        producer_max_request_size=MAX_RECORD_BYTES,  # frames can exceed 1 MB (streams/internal_topics.py)
        consumer_max_fetch_size=FETCH_BYTES,
        # a SIGKILLed worker holds its partitions until the broker gives up on it; heartbeats must come
        # at least three times per session so a live worker is never taken for a dead one
        broker_session_timeout=settings.kafka.session_timeout_s,
        broker_heartbeat_interval=min(3.0, settings.kafka.session_timeout_s / 3),
    )
