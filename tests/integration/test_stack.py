"""The local stack for real: topics, a Kafka round trip, Redis, clean stops and clear failures."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from cityscreen.errors import CityScreenError
from cityscreen.events import ALL_TOPICS, CLEAN_TOPICS, INGEST_TOPICS, topic_partitions
from cityscreen.settings import to_env
from services.stack import LocalStack, start_stack
from services.stack.procs import pid_alive
from services.stack.state import read_state
from services.stack.testing import REPO_ROOT, isolated_settings, jar_cache_dir

pytestmark = pytest.mark.integration


async def test_every_topic_exists_with_its_partitions(stack: LocalStack) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(list(ALL_TOPICS))
    finally:
        await admin.close()
    partitions = {t["topic"]: len(t["partitions"]) for t in described if t["error_code"] == 0}
    configured = stack.settings.kafka.partitions
    assert partitions == {topic: topic_partitions(topic, configured) for topic in ALL_TOPICS}
    assert {partitions[t] for t in INGEST_TOPICS.values()} == {1}  # raw topics: one, so order holds
    assert {partitions[t] for t in CLEAN_TOPICS.values()} == {configured}


async def test_a_record_produced_is_consumed(stack: LocalStack) -> None:
    topic = f"test.roundtrip.{uuid.uuid4().hex}"
    payload = uuid.uuid4().bytes
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topic, payload, key=b"k")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=stack.bootstrap, auto_offset_reset="earliest", group_id=f"g-{topic}"
    )
    await consumer.start()
    try:
        record = await consumer.getone()
    finally:
        await consumer.stop()
    assert (record.key, record.value) == (b"k", payload)


def test_redis_answers_on_the_recorded_url(stack: LocalStack) -> None:
    client = redis.Redis.from_url(stack.settings.redis.url)
    try:
        assert client.ping() is True
    finally:
        client.close()
    assert stack.settings.redis.url == stack.redis_url == read_state(stack.data_dir).redis_url  # type: ignore[union-attr]


def test_a_second_start_on_the_same_data_is_refused(stack: LocalStack) -> None:
    with pytest.raises(CityScreenError, match=r"already running .*cityscreen stack stop"):
        start_stack(stack.settings, cache_dir=jar_cache_dir())


def test_stop_leaves_no_process(stack_factory: Callable[..., LocalStack], wait_for: Any) -> None:
    private = stack_factory()
    pids = private.pids()
    assert all(pid_alive(pid) for pid in pids.values())
    private.stop()
    assert [name for name, pid in pids.items() if pid_alive(pid)] == []
    assert read_state(private.data_dir) is None


def test_a_taken_port_gives_the_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = int(taken.getsockname()[1])
        settings = isolated_settings(tmp_path)
        settings = settings.model_copy(update={"redis": settings.redis.model_copy(update={"port": port})})
        with pytest.raises(CityScreenError) as err:
            start_stack(settings, cache_dir=jar_cache_dir())
    assert f"Redis port {port} on 127.0.0.1 is already in use" in str(err.value)
    assert "CITY_REDIS__PORT=0" in str(err.value)
    assert read_state(tmp_path) is None


def test_a_broker_that_fails_shows_its_log(tmp_path: Path) -> None:
    settings = isolated_settings(tmp_path)
    data = tmp_path / "stack" / "kafka-data"
    data.mkdir(parents=True)
    # A formatted-looking dir whose node id disagrees with node.id=1: the broker refuses to start.
    (data / "meta.properties").write_text("version=1\ncluster.id=AAAAAAAAAAAAAAAAAAAAAA\nnode.id=7\n")
    with pytest.raises(CityScreenError) as err:
        start_stack(settings, cache_dir=jar_cache_dir())
    message = str(err.value)
    assert "kafka exited before it was serving metadata" in message
    assert str(tmp_path / "logs" / "kafka.log") in message
    assert "Stored node id 7" in message  # the log line that explains it
    assert read_state(tmp_path) is None


def cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_start_status_stop_in_the_background(tmp_path: Path) -> None:
    env = {**os.environ, **to_env(isolated_settings(tmp_path / "data"))}
    env["CITY_DATA_DIR"] = str(tmp_path / "data")
    jars = jar_cache_dir() / isolated_settings(tmp_path).kafka.version
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "kafka").mkdir()
    os.symlink(jars, tmp_path / "data" / "kafka" / jars.name)  # reuse the jars, do not refetch
    started = cli(["stack", "start"], env)
    assert started.returncode == 0, started.stderr
    state = json.loads((tmp_path / "data" / "stack.json").read_text())
    try:
        assert f"CITY_KAFKA__BOOTSTRAP={state['bootstrap']}" in started.stdout
        status = cli(["stack", "status"], env)
        assert status.returncode == 0 and state["redis_url"] in status.stdout
    finally:
        stopped = cli(["stack", "stop"], env)
    assert stopped.returncode == 0 and "stopped kafka" in stopped.stdout
    assert not pid_alive(state["kafka_pid"]) and not pid_alive(state["redis_pid"])
    assert cli(["stack", "status"], env).returncode == 1


def test_killing_a_foreground_stack_leaves_no_orphans(tmp_path: Path, wait_for: Any) -> None:
    env = {**os.environ, **to_env(isolated_settings(tmp_path / "data"))}
    jars = jar_cache_dir() / isolated_settings(tmp_path).kafka.version
    (tmp_path / "data" / "kafka").mkdir(parents=True)
    os.symlink(jars, tmp_path / "data" / "kafka" / jars.name)
    parent = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "stack", "start", "--foreground"],
        env=env,
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        state = wait_for(lambda: read_state(tmp_path / "data"), timeout_s=90, what="stack.json")
        os.kill(parent.pid, signal.SIGKILL)  # no chance to clean up: the kernel must end the children
        parent.wait(10)
        wait_for(
            lambda: not pid_alive(state.kafka_pid) and not pid_alive(state.redis_pid),
            timeout_s=30,
            what="kafka and redis to die with their parent",
        )
    finally:
        if parent.poll() is None:
            parent.kill()
        for pid in (state.kafka_pid, state.redis_pid) if "state" in locals() else ():
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
