"""The shared topic helper: which broker answers count as refusals, and the project's topic specs."""

from adapters.kafka_topics import TopicSpec, project_specs, refusals
from cityscreen.events import CLEAN_TOPICS, INGEST_TOPIC_PARTITIONS, INGEST_TOPICS


def test_a_concurrent_creators_win_is_not_a_refusal() -> None:
    answer = [("a", 0, None), ("b", 36, "already exists"), ("c", 37, "bad partitions"), ("d", 38, "rf")]
    assert refusals(answer) == [("c", "InvalidPartitionsError"), ("d", "InvalidReplicationFactorError")]


def test_project_specs_carry_partitions_and_replica_settings() -> None:
    raw, clean = next(iter(INGEST_TOPICS.values())), next(iter(CLEAN_TOPICS.values()))
    single = project_specs([raw, clean], partitions=4)
    assert single == [TopicSpec(raw, INGEST_TOPIC_PARTITIONS, {}), TopicSpec(clean, 4, {})]
    replicated = project_specs([clean], partitions=4, replication_factor=3)
    assert replicated[0].configs == {"min.insync.replicas": "2"}
