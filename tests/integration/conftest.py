"""Integration fixtures: a real Kafka (KRaft) + redis-server on free loopback ports, started once per run.

How to use them (every test in tests/integration is marked `integration` automatically; mark it anyway):

    pytestmark = pytest.mark.integration

    def test_something(stack, spawn, fresh_redis, wait_for):
        settings = stack.settings                 # Settings pointing at the running stack
        settings.kafka.bootstrap                  # "127.0.0.1:<port>"
        settings.redis.url                        # "redis://127.0.0.1:<port>/0"
        worker = spawn("worker", "--role", "ingest")          # `cityscreen worker --role ingest`
        api = spawn("api", settings=settings.model_copy(...)) # other settings for this child only
        wait_for(lambda: fresh_redis.exists("city:stats"), what="worker stats")

Fixtures:
- `stack` (session): the shared `LocalStack`. Topics in `cityscreen.events.ALL_TOPICS` exist with
  `settings.kafka.partitions` partitions. Other tests write to the same topics: use unique keys, consumer
  groups and ids, or `stack_factory` when a test needs topics nobody else touched.
- `stack_factory` (function): `stack_factory(**settings_overrides)` starts a private stack (about 5 s), in
  its own tmp dir, stopped after the test. For golden tests and restart tests.
- `spawn` (function): `spawn(*cli_args, settings=None, name=None, env=None, module="services.cli")` runs
  `cityscreen <cli_args>` as `python -m services.cli` (or another module with the same command line)
  with `to_env(settings or stack.settings)`; returns a `ManagedProcess` (`.is_alive()`, `.tail()`,
  `.log_path`, `.stop()`, `.wait_ready(probe, timeout_s=...)`). Every child is stopped (SIGTERM, then
  SIGKILL) at teardown and the end of its log is printed, which pytest shows when the test fails.
- `fresh_redis` (function): a sync `redis.Redis` client on the stack's Redis after FLUSHDB.
- `free_port`, `wait_for`: from tests/conftest.py (every level shares them).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import redis

from cityscreen.settings import Settings, to_env
from services.stack import LocalStack, ManagedProcess, start_stack
from services.stack import spawn as spawn_process
from services.stack.testing import REPO_ROOT, isolated_settings, jar_cache_dir

T = TypeVar("T")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    running = start_stack(isolated_settings(tmp_path_factory.mktemp("stack")), cache_dir=jar_cache_dir())
    with running:
        yield running


@pytest.fixture
def stack_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., LocalStack]]:
    started: list[LocalStack] = []

    def make(**overrides: Any) -> LocalStack:
        settings = isolated_settings(tmp_path_factory.mktemp("private-stack"), **overrides)
        started.append(start_stack(settings, cache_dir=jar_cache_dir()))
        return started[-1]

    yield make
    for running in reversed(started):
        running.stop()


@pytest.fixture
def spawn(stack: LocalStack, tmp_path: Path) -> Iterator[Callable[..., ManagedProcess]]:
    children: list[ManagedProcess] = []

    def run(
        *cli_args: str,
        settings: Settings | None = None,
        name: str | None = None,
        env: dict[str, str] | None = None,
        module: str = "services.cli",
    ) -> ManagedProcess:
        child_env = {**os.environ, **to_env(settings or stack.settings), **(env or {})}
        child_name = name or "-".join(a.lstrip("-") for a in cli_args[:3]) or "cityscreen"
        proc = spawn_process(
            f"{child_name}-{len(children)}",
            [sys.executable, "-m", module, *cli_args],
            log_dir=tmp_path / "logs",
            env=child_env,
            cwd=REPO_ROOT,
        )
        children.append(proc)
        return proc

    yield run
    for proc in reversed(children):
        proc.stop(10.0)
        print(f"--- {proc.name} (exit {proc.returncode}), end of {proc.log_path}:\n{proc.tail()}")


@pytest.fixture
def fresh_redis(stack: LocalStack) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(stack.redis_url)
    client.flushdb()
    yield client
    client.close()
