"""The pure parts of the local stack: rendered broker/log4j properties, template rendering, Java versions."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.stack.kafka import (
    BrokerConfig,
    parse_java_major,
    quorum_voters,
    render_log4j,
    render_server_properties,
)
from services.stack.redis_server import redis_argv, redis_url
from services.stack.templates import parse_properties, render, template_text


def make_config(**overrides: object) -> BrokerConfig:
    fields: dict[str, object] = {
        "port": 41001,
        "controller_port": 41002,
        "partitions": 6,
        "log_dirs": Path("/tmp/city data/kafka-data"),
        "log_file": Path("/tmp/city data/logs/kafka.log"),
    }
    fields.update(overrides)
    return BrokerConfig(**fields)  # type: ignore[arg-type]


def test_server_properties_use_the_chosen_ports_on_loopback() -> None:
    props = parse_properties(render_server_properties(make_config(port=45001, controller_port=45002)))
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:45001,CONTROLLER://127.0.0.1:45002"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:45001"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:45002"


def test_server_properties_are_single_node_kraft() -> None:
    props = parse_properties(render_server_properties(make_config(partitions=7)))
    assert props["process.roles"] == "broker,controller"
    assert props["num.partitions"] == "7"
    for key in ("offsets.topic.replication.factor", "transaction.state.log.replication.factor"):
        assert props[key] == "1"
    assert props["log.dirs"] == "/tmp/city data/kafka-data"


def test_log4j_writes_to_the_given_file() -> None:
    props = parse_properties(render_log4j(Path("/srv/c:d/logs/kafka.log")))
    assert props["log4j.appender.file.File"] == "/srv/c\\:d/logs/kafka.log"
    assert props["log4j.rootLogger"].startswith("INFO")


def test_render_refuses_a_field_without_value() -> None:
    with pytest.raises(KeyError, match="port"):
        render("listeners={{host}}:{{port}}", {"host": "h"})


def test_render_fills_repeated_fields() -> None:
    assert render("{{a}}-{{a}}-{{b}}", {"a": 1, "b": "x"}) == "1-1-x"


def test_pom_ships_as_package_data_and_takes_the_version_as_a_property() -> None:
    pom = template_text("pom.xml")
    assert "<artifactId>kafka_2.13</artifactId>" in pom
    assert "<version>${kafka.version}</version>" in pom


@pytest.mark.parametrize(
    ("output", "major"),
    [
        ('openjdk version "17.0.15" 2025-04-15', 17),
        ('openjdk version "21" 2023-09-19', 21),
        ('java version "1.8.0_392"', 8),
        ('openjdk version "11.0.2" 2019-01-15 LTS', 11),
        ("bash: java: command not found", None),
    ],
)
def test_parse_java_major(output: str, major: int | None) -> None:
    assert parse_java_major(output) == major


def test_redis_is_bound_to_loopback_with_its_dir() -> None:
    argv = redis_argv("/usr/bin/redis-server", 41003, Path("/d/redis"))
    assert argv[argv.index("--bind") + 1] == "127.0.0.1"
    assert argv[argv.index("--port") + 1] == "41003"
    assert argv[argv.index("--dir") + 1] == "/d/redis"
    assert redis_url(41003) == "redis://127.0.0.1:41003/0"


def test_a_cluster_node_names_every_voter_and_replicates_like_production() -> None:
    voters = quorum_voters([45002, 45012, 45022])
    config = make_config(node_id=2, voters=voters, replication_factor=3)
    props = parse_properties(render_server_properties(config))
    assert props["node.id"] == "2"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:45002,2@127.0.0.1:45012,3@127.0.0.1:45022"
    for key in ("default.replication.factor", "offsets.topic.replication.factor"):
        assert props[key] == "3"
    assert props["min.insync.replicas"] == props["transaction.state.log.min.isr"] == "2"
    assert props["unclean.leader.election.enable"] == "false"
