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
from services.stack.procs import ManagedProcess, kill_groups
from services.stack.redis_server import REDIS_INSTALL_HINT, redis_url
from services.stack.state import StackState, clear_state, read_state, write_state

READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 20.0

Starter = Callable[[], ManagedProcess]  # starts one process of the stack (again, after it died)


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
                    "brokers": 1 + len(state.more_kafka_pids),
                    "replication_factor": state.replication_factor,
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
    # brokers 2..n of a cluster, and how to start any node again (known only where it was started)
    more_brokers: list[ManagedProcess] = field(default_factory=list)
    restarters: list[Starter] = field(default_factory=list, repr=False)
    start_redis: Starter | None = field(default=None, repr=False)
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

    @property
    def brokers(self) -> list[ManagedProcess]:
        """Every broker started here, node 1 first (node i is `brokers[i - 1]`)."""
        return [p for p in (self.kafka, *self.more_brokers) if p is not None]

    def dead_process(self) -> ManagedProcess | None:
        """The first child that has exited, if any (only known for stacks started by this process)."""
        return next((p for p in (*self.brokers, self.redis) if p is not None and not p.is_alive()), None)

    def restart_broker(self, node_id: int) -> ManagedProcess:
        """Start a dead broker of this stack again with its configuration and data (for fault tests)."""
        old = self.brokers[node_id - 1]
        if old.is_alive():
            raise CityScreenError(f"broker {node_id} (pid {old.pid}) still runs: stop it first")
        old.stop(0.0)  # reap it
        proc = self.restarters[node_id - 1]()
        if node_id == 1:
            self.kafka = proc
        else:
            self.more_brokers[node_id - 2] = proc
        return proc

    def restart_kafka(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Stop every broker cleanly and start them again on the same ports and data (topics and
        offsets kept): a broker restart as an operator does it, for the fault suite."""
        if self.kafka is None or not self.restarters:
            raise CityScreenError("only a stack started by this process can restart its brokers")
        kill_groups([p.pid for p in self.brokers if p.is_alive()], STOP_TIMEOUT_S)
        for proc in self.brokers:
            proc.stop(0.0)  # reaps it: restart_broker starts only a broker it knows is gone
        for node_id in range(1, len(self.brokers) + 1):
            self.restart_broker(node_id)
        k = self.settings.kafka
        rf = self.state.replication_factor
        kafka.wait_broker_ready(self.brokers[0], self.bootstrap, ALL_TOPICS, k.partitions, timeout_s,
                                brokers=len(self.brokers), replication_factor=rf)  # fmt: skip
        self._record(replace(self.state, kafka_pid=self.brokers[0].pid,
                             more_kafka_pids=[p.pid for p in self.more_brokers]))  # fmt: skip

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

    def stop(self) -> None:
        if self._stopped or not self.owned:
            return
        self._stopped = True
        # Kafka first: it is the one with state to flush; Redis saves its snapshot on SIGTERM. The
        # brokers of a cluster stop together, so none waits on the others to take over its partitions.
        kill_groups([p.pid for p in self.brokers if p.is_alive()], STOP_TIMEOUT_S)
        for proc in self.brokers:
            proc.stop(0.0)  # reaps it
        if self.redis is not None:
            self.redis.stop(STOP_TIMEOUT_S)
        clear_state(self.data_dir)

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
    kafka_pids = [pid for name, pid in live.items() if name.startswith("kafka")]
    kill_groups(kafka_pids, timeout_s)  # Kafka first, as `LocalStack.stop` does
    kill_groups([pid for pid in live.values() if pid not in kafka_pids], timeout_s)
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
    java, libs = _prepare(settings, data_dir, cache_dir)
    if fresh:
        shutil.rmtree(stack_dir(data_dir), ignore_errors=True)
    check_broker_count(stack_dir(data_dir), settings.kafka.brokers)
    ports = resolve_ports(
        [*_broker_port_requests(settings), PortRequest("Redis", settings.redis.port, "CITY_REDIS__PORT")]
    )
    configs = _broker_configs(settings, ports, data_dir)
    url = redis_url(ports["Redis"])
    restarters = [_broker_starter(java, libs, settings, c, data_dir, attached) for c in configs]
    start_redis = functools.partial(
        redis_server.start_redis, port=ports["Redis"], data_dir=stack_dir(data_dir) / "redis",
        log_dir=logs_dir(data_dir), attached=attached,
    )  # fmt: skip
    redis_proc, broker, *more = _launch(settings, start_redis, restarters, configs, url, timeout_s)
    state = StackState(
        data_dir=str(data_dir),
        kafka_port=configs[0].port,
        kafka_controller_port=configs[0].controller_port,
        kafka_pid=broker.pid,
        redis_port=ports["Redis"],
        redis_pid=redis_proc.pid,
        bootstrap=",".join(c.bootstrap for c in configs),
        redis_url=url,
        owner_pid=os.getpid(),
        started_ms=int(time.time() * 1000),
        more_kafka_pids=[p.pid for p in more],
        replication_factor=configs[0].replication_factor,
    )
    write_state(state)
    return LocalStack(state=state, settings=settings_for(settings, state), kafka=broker, redis=redis_proc,
                      more_brokers=more, restarters=restarters, start_redis=start_redis)  # fmt: skip


def _prepare(settings: Settings, data_dir: Path, cache_dir: Path | None) -> tuple[str, Path]:
    """Refuse to start over a running stack or without Java or redis-server; clear a dead stack's record.
    Returns the java executable and the Kafka jars (fetched once)."""
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
    return java, kafka.fetch_jars(cache_dir or default_cache_dir(settings), settings.kafka.version)


def _launch(
    settings: Settings, start_redis: Starter, restarters: list[Starter], configs: list[kafka.BrokerConfig],
    url: str, timeout_s: float,
) -> list[ManagedProcess]:  # fmt: skip
    """Start Redis, then every broker, and wait until all serve; returns them in that order. On any
    failure (or Ctrl-C) what was started is stopped again."""
    started: list[ManagedProcess] = []
    try:
        redis_proc = start_redis()
        started.append(redis_proc)
        for restart in restarters:
            started.append(restart())
        redis_server.wait_redis_ready(redis_proc, url, timeout_s)
        bootstrap = ",".join(c.bootstrap for c in configs)
        kafka.wait_broker_ready(started[1], bootstrap, ALL_TOPICS, settings.kafka.partitions, timeout_s,
                                brokers=settings.kafka.brokers,
                                replication_factor=configs[0].replication_factor)  # fmt: skip
    except BaseException:
        for proc in reversed(started):
            proc.stop(5.0)
        raise
    return started


def check_broker_count(stack: Path, brokers: int) -> None:
    """Refuse data of a stack with another number of brokers (its quorum voters and replicas would not
    match: the brokers would fail to form a cluster, or refuse acks=all writes); record the count."""
    marker = stack / "kafka-brokers"
    if marker.exists():
        before: int | None = int(marker.read_text(encoding="utf-8"))
    else:  # data from before the count was recorded is a single broker's
        before = 1 if kafka.is_formatted(stack / "kafka-data") else None
    if before is not None and before != brokers:
        raise CityScreenError(
            f"the Kafka data in {stack} belongs to a {before}-broker stack, not {brokers}: start it with "
            f"`--brokers {before}`, or add `--fresh` to wipe the stack's data (not the jars)"
        )
    stack.mkdir(parents=True, exist_ok=True)
    marker.write_text(f"{brokers}\n", encoding="utf-8")


def _broker_port_requests(settings: Settings) -> list[PortRequest]:
    """Node i listens on the configured ports + i - 1 (or on free ones when they are 0)."""
    k = settings.kafka
    out = []
    for i in range(settings.kafka.brokers):
        suffix = "" if i == 0 else f" {i + 1}"
        out.append(PortRequest(f"Kafka{suffix}", k.port + i if k.port else 0, "CITY_KAFKA__PORT"))
        out.append(PortRequest(f"Kafka controller{suffix}", k.controller_port + i if k.controller_port else 0,
                               "CITY_KAFKA__CONTROLLER_PORT"))  # fmt: skip
    return out


def _broker_configs(settings: Settings, ports: dict[str, int], data_dir: Path) -> list[kafka.BrokerConfig]:
    """One config per node: node 1 keeps the single broker's paths, so a one-broker stack is unchanged.
    Replicated as a production cluster is (3 copies, 2 in sync) once there are 3 brokers."""
    n = settings.kafka.brokers
    names = ["" if i == 1 else f" {i}" for i in range(1, n + 1)]
    voters = kafka.quorum_voters([ports[f"Kafka controller{name}"] for name in names]) if n > 1 else ""
    return [
        kafka.BrokerConfig(
            port=ports[f"Kafka{name}"],
            controller_port=ports[f"Kafka controller{name}"],
            partitions=settings.kafka.partitions,
            log_dirs=stack_dir(data_dir) / ("kafka-data" if i == 1 else f"kafka-{i}-data"),
            log_file=logs_dir(data_dir) / ("kafka.log" if i == 1 else f"kafka-{i}.log"),
            node_id=i,
            voters=voters,
            replication_factor=min(n, 3),
        )
        for i, name in enumerate(names, start=1)
    ]


def _broker_starter(
    java: str, libs: Path, settings: Settings, config: kafka.BrokerConfig, data_dir: Path, attached: bool
) -> Starter:
    """Starts (and restarts) one node; every node of a fresh cluster is formatted with one cluster id."""
    conf_dir = stack_dir(data_dir) / ("kafka-conf" if config.node_id == 1 else f"kafka-{config.node_id}-conf")
    cluster_id_file = stack_dir(data_dir) / "kafka-cluster-id"

    def cluster_id() -> str:
        if not cluster_id_file.exists():
            cluster_id_file.parent.mkdir(parents=True, exist_ok=True)
            cluster_id_file.write_text(kafka.new_cluster_id(java, libs, conf_dir / "log4j.properties"))
        return cluster_id_file.read_text().strip()

    def start() -> ManagedProcess:
        return kafka.start_broker(java=java, libs=libs, conf_dir=conf_dir, config=config,
                                  heap_mb=settings.kafka.heap_mb, log_dir=logs_dir(data_dir),
                                  attached=attached, cluster_id=cluster_id)  # fmt: skip

    return start
