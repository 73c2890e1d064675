"""Create missing Kafka topics: the one place the stack, the generator, the benches and the workers do it.

Creation races are normal (two workers, or the stack and a worker, starting together), so a topic that
already exists counts as created. Anything else the broker refuses is retried until a deadline, because a
broker that has just started may refuse creation until its controller settles; then the error names the
refusal and what to check.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tenacity import AsyncRetrying, RetryError, retry_if_exception_type, stop_after_delay, wait_fixed

from cityscreen.errors import CityScreenError
from cityscreen.events import replica_configs, topic_partitions

RETRY_WAIT_S = 0.2


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    configs: Mapping[str, str] = field(default_factory=dict)


def project_specs(topics: Iterable[str], partitions: int, replication_factor: int = 1) -> list[TopicSpec]:
    """The project's own topics (raw, clean, frames, dead letters) with their partition counts and the
    replica settings a cluster needs."""
    replicas = replica_configs(replication_factor)
    return [TopicSpec(t, topic_partitions(t, partitions), replicas) for t in topics]


class _Refused(Exception):
    """The broker refused some topics this round; retried until the deadline."""

    def __init__(self, refusals: list[tuple[str, str]]) -> None:
        super().__init__(refusals)
        self.refusals = refusals


def refusals(topic_errors: Iterable[tuple[Any, ...]]) -> list[tuple[str, str]]:
    """(topic, error name) of every refusal in a CreateTopics response, a concurrent creator's win aside."""
    from aiokafka.errors import TopicAlreadyExistsError, for_code

    return [
        (name, for_code(code).__name__)
        for name, code, *_ in topic_errors
        if code not in (0, TopicAlreadyExistsError.errno)
    ]


async def ensure_topics(
    bootstrap: str,
    specs: Iterable[TopicSpec],
    *,
    replication_factor: int = 1,
    timeout_s: float = 30.0,
    reconfigure: Mapping[str, Mapping[str, str]] | None = None,
) -> None:
    """Create every topic of `specs` that is missing, with `replication_factor` replicas; then set the
    `reconfigure` configs on those of its topics that exist (a topic made by an older version)."""
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.errors import KafkaConnectionError

    wanted = list(specs)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    try:
        await admin.start()
    except KafkaConnectionError as exc:
        raise CityScreenError(
            f"cannot reach Kafka at {bootstrap} to create topics: start it (`cityscreen stack start`) "
            "or set CITY_KAFKA__BOOTSTRAP to a running broker"
        ) from exc
    try:
        retrying = AsyncRetrying(
            stop=stop_after_delay(timeout_s),
            wait=wait_fixed(RETRY_WAIT_S),
            retry=retry_if_exception_type(_Refused),
        )
        await retrying(_create_missing, admin, wanted, replication_factor)
        await _reconfigure(admin, dict(reconfigure or {}))
    except RetryError as exc:
        last = exc.last_attempt.exception()
        shown = last.refusals if isinstance(last, _Refused) else last
        raise CityScreenError(
            f"Kafka refused to create topics for {timeout_s:.0f} s: {shown}. Check the broker log; "
            f"a replication factor of {replication_factor} needs that many brokers up"
        ) from exc
    finally:
        await admin.close()


async def _create_missing(admin: Any, wanted: list[TopicSpec], replication_factor: int) -> None:
    from aiokafka.admin import NewTopic

    existing = set(await admin.list_topics())
    missing = [s for s in wanted if s.name not in existing]
    if not missing:
        return
    response = await admin.create_topics(
        [
            NewTopic(
                s.name,
                num_partitions=s.partitions,
                replication_factor=replication_factor,
                topic_configs=dict(s.configs),
            )
            for s in missing
        ]
    )
    refused = refusals(response.topic_errors)
    if refused:
        raise _Refused(refused)


async def _reconfigure(admin: Any, reconfigure: dict[str, Mapping[str, str]]) -> None:
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    if not reconfigure:
        return
    existing = set(await admin.list_topics())
    resources = [
        ConfigResource(ConfigResourceType.TOPIC, topic, configs=dict(configs))
        for topic, configs in reconfigure.items()
        if topic in existing
    ]
    if resources:
        await admin.alter_configs(resources)
