"""The local stack as one object: `start_stack(settings)` brings up Kafka (KRaft) and redis-server on
loopback, creates the topics and returns a `LocalStack` whose `.settings` point at them."""

from __future__ import annotations

import functools
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType

from cityscreen.errors import CityScreenError
from cityscreen.events import ALL_TOPICS
from cityscreen.settings import Settings
from services.stack import kafka, redis_server
from services.stack.ports import PortRequest, resolve_ports
from services.stack.procs import ManagedProcess, kill_group
from services.stack.redis_server import REDIS_INSTALL_HINT, redis_url
from services.stack.state import StackState, clear_state, read_state, write_state

READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 20.0


def default_cache_dir(settings: Settings) -> Path:
    """Jars live beside (not inside) the stack's data, so `--fresh` never re-downloads them."""
    return settings.data_dir.resolve() / "kafka"


def stack_dir(data_dir: Path) -> Path:
    return data_dir / "stack"


def logs_dir(data_dir: Path) -> Path:
    return data_dir / "logs"


def settings_for(settings: Settings, state: StackState) -> Settings:
    """`settings` pointed at a running stack: bootstrap, redis url and the ports actually used."""
    return settings.model_copy(
        update={
            "data_dir": Path(state.data_dir),
            "kafka": settings.kafka.model_copy(
                update={
                    "bootstrap": state.bootstrap,
                    "port": state.kafka_port,
                    "controller_port": state.kafka_controller_port,
                }
            ),
            "redis": settings.redis.model_copy(update={"url": state.redis_url, "port": state.redis_port}),
        }
    )


@dataclass
class LocalStack:
    """A running stack. `owned` stacks were started here and are stopped by `stop()` or leaving `with`."""

    state: StackState
    settings: Settings
    kafka: ManagedProcess | None = None
    redis: ManagedProcess | None = None
    owned: bool = True
    # how this stack started each server, so a fault test (or an operator's tool) can restart one alone
    start_kafka: Callable[[], ManagedProcess] | None = field(default=None, repr=False)
    start_redis: Callable[[], ManagedProcess] | None = field(default=None, repr=False)
    _stopped: bool = field(default=False, repr=False)

    @property
    def bootstrap(self) -> str:
        return self.state.bootstrap

    @property
    def redis_url(self) -> str:
        return self.state.redis_url

    @property
    def data_dir(self) -> Path:
        return Path(self.state.data_dir)

    def pids(self) -> dict[str, int]:
        return self.state.pids()

    def dead_process(self) -> ManagedProcess | None:
        """The first child that has exited, if any (only known for stacks started by this process)."""
        return next((p for p in (self.kafka, self.redis) if p is not None and not p.is_alive()), None)

    def stop(self) -> None:
        if self._stopped or not self.owned:
            return
        self._stopped = True
        # Kafka first: it is the one with state to flush; Redis saves its snapshot on SIGTERM.
        for proc in (self.kafka, self.redis):
            if proc is not None:
                proc.stop(STOP_TIMEOUT_S)
        clear_state(self.data_dir)

    def restart_kafka(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Stop the broker cleanly and start it again on the same ports and data (topics, offsets kept)."""
        if self.kafka is None or self.start_kafka is None:
            raise CityScreenError("only a stack started by this process can restart its broker")
        self.kafka.stop(STOP_TIMEOUT_S)
        self.kafka = self.start_kafka()
        kafka.wait_broker_ready(
            self.kafka, self.bootstrap, ALL_TOPICS, self.settings.kafka.partitions, timeout_s
        )
        self._record(replace(self.state, kafka_pid=self.kafka.pid))

    def restart_redis(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Stop redis-server (it saves its snapshot on SIGTERM) and start it again on the same port."""
        if self.redis is None or self.start_redis is None:
            raise CityScreenError("only a stack started by this process can restart its Redis")
        self.redis.stop(STOP_TIMEOUT_S)
        self.redis = self.start_redis()
        redis_server.wait_redis_ready(self.redis, self.redis_url, timeout_s)
        self._record(replace(self.state, redis_pid=self.redis.pid))

    def _record(self, state: StackState) -> None:
        self.state = state
        write_state(state)

    def __enter__(self) -> LocalStack:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def running_stack(settings: Settings) -> LocalStack | None:
    """The stack recorded in `data_dir/stack.json` if all its processes still run (not owned here)."""
    data_dir = settings.data_dir.resolve()
    state = read_state(data_dir)
    if state is None or len(state.live_pids()) != len(state.pids()):
        return None
    return LocalStack(state=state, settings=settings_for(settings, state), owned=False)


def stop_recorded_stack(data_dir: Path, timeout_s: float = STOP_TIMEOUT_S) -> dict[str, int]:
    """Stop the processes recorded in `data_dir/stack.json`; returns the pids that were signalled."""
    state = read_state(data_dir)
    if state is None:
        return {}
    live = state.live_pids()
    for pid in live.values():
        kill_group(pid, timeout_s)
    clear_state(data_dir)
    return live


def start_stack(
    settings: Settings,
    *,
    fresh: bool = False,
    attached: bool = True,
    cache_dir: Path | None = None,
    timeout_s: float = READY_TIMEOUT_S,
) -> LocalStack:
    """Start Kafka and Redis on loopback and wait until both serve; the caller stops them (`with` or `stop`).

    `attached` processes die with this one; detached ones keep running until `cityscreen stack stop`.
    """
    data_dir = settings.data_dir.resolve()
    previous = read_state(data_dir)
    if previous is not None and previous.live_pids():
        pids = ", ".join(f"{n} {p}" for n, p in previous.live_pids().items())
        raise CityScreenError(
            f"a local stack from {data_dir} is already running ({pids}): "
            "use it, or run `cityscreen stack stop`"
        )
    clear_state(data_dir)

    java = kafka.java_executable()
    kafka.check_java(java)
    if not shutil.which("redis-server"):
        raise CityScreenError(f"redis-server not found: {REDIS_INSTALL_HINT}")
    libs = kafka.fetch_jars(cache_dir or default_cache_dir(settings), settings.kafka.version)

    if fresh:
        shutil.rmtree(stack_dir(data_dir), ignore_errors=True)
    ports = resolve_ports(
        [
            PortRequest("Kafka", settings.kafka.port, "CITY_KAFKA__PORT"),
            PortRequest("Kafka controller", settings.kafka.controller_port, "CITY_KAFKA__CONTROLLER_PORT"),
            PortRequest("Redis", settings.redis.port, "CITY_REDIS__PORT"),
        ]
    )
    logs = logs_dir(data_dir)
    config = kafka.BrokerConfig(
        port=ports["Kafka"],
        controller_port=ports["Kafka controller"],
        partitions=settings.kafka.partitions,
        log_dirs=stack_dir(data_dir) / "kafka-data",
        log_file=logs / "kafka.log",
    )
    url = redis_url(ports["Redis"])
    started: list[ManagedProcess] = []
    start_redis = functools.partial(
        redis_server.start_redis,
        port=ports["Redis"],
        data_dir=stack_dir(data_dir) / "redis",
        log_dir=logs,
        attached=attached,
    )
    start_kafka = functools.partial(
        kafka.start_broker,
        java=java,
        libs=libs,
        conf_dir=stack_dir(data_dir) / "kafka-conf",
        config=config,
        heap_mb=settings.kafka.heap_mb,
        log_dir=logs,
        attached=attached,
    )
    try:
        redis_proc = start_redis()
        started.append(redis_proc)
        broker = start_kafka()
        started.append(broker)
        redis_server.wait_redis_ready(redis_proc, url, timeout_s)
        kafka.wait_broker_ready(broker, config.bootstrap, ALL_TOPICS, settings.kafka.partitions, timeout_s)
    except BaseException:
        for proc in reversed(started):
            proc.stop(5.0)
        raise
    state = StackState(
        data_dir=str(data_dir),
        kafka_port=config.port,
        kafka_controller_port=config.controller_port,
        kafka_pid=broker.pid,
        redis_port=ports["Redis"],
        redis_pid=redis_proc.pid,
        bootstrap=config.bootstrap,
        redis_url=url,
        owner_pid=os.getpid(),
        started_ms=int(time.time() * 1000),
    )
    write_state(state)
    return LocalStack(
        state=state,
        settings=settings_for(settings, state),
        kafka=broker,
        redis=redis_proc,
        start_kafka=start_kafka,
        start_redis=start_redis,
    )
