"""The local Kafka broker: check Java, fetch the jars once with Maven, format KRaft storage once, start it,
wait for metadata and create every project topic."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Coroutine, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from adapters.kafka_topics import ensure_topics, project_specs
from cityscreen.errors import CityScreenError
from cityscreen.events import min_insync_replicas
from services.stack.procs import TAIL_LINES, ManagedProcess, spawn
from services.stack.templates import properties_value, render, template_text

MIN_JAVA_MAJOR = 17
FETCH_MARKER = ".fetched"
T = TypeVar("T")
JAVA_INSTALL_HINT = "install a JDK (Debian: apt-get install openjdk-17-jre-headless) or set JAVA_HOME to one"


@dataclass(frozen=True)
class BrokerConfig:
    """One KRaft node. Alone by default; in a cluster `voters` names every node's controller address."""

    port: int
    controller_port: int
    partitions: int
    log_dirs: Path
    log_file: Path
    node_id: int = 1
    voters: str = ""
    replication_factor: int = 1

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def quorum_voters(self) -> str:
        return self.voters or f"{self.node_id}@127.0.0.1:{self.controller_port}"


def quorum_voters(controller_ports: list[int]) -> str:
    """KRaft's `controller.quorum.voters` for nodes 1..n listening on these loopback controller ports."""
    return ",".join(f"{i}@127.0.0.1:{port}" for i, port in enumerate(controller_ports, start=1))


def render_server_properties(config: BrokerConfig) -> str:
    return render(
        template_text("server.properties"),
        {
            "node_id": config.node_id,
            "voters": config.quorum_voters,
            "port": config.port,
            "controller_port": config.controller_port,
            "partitions": config.partitions,
            "log_dirs": properties_value(config.log_dirs),
            "replication_factor": config.replication_factor,
            "min_insync_replicas": min_insync_replicas(config.replication_factor),
        },
    )


def render_log4j(log_file: Path) -> str:
    return render(template_text("log4j.properties"), {"log_file": properties_value(log_file)})


def java_executable() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").exists():
        return str(Path(java_home) / "bin" / "java")
    found = shutil.which("java")
    if not found:
        raise CityScreenError(f"Java {MIN_JAVA_MAJOR}+ not found: {JAVA_INSTALL_HINT}")
    return found


def parse_java_major(version_output: str) -> int | None:
    """The major version from `java -version` output ('1.8.0_392' is 8, '17.0.15' is 17)."""
    match = re.search(r'version "(\d+)(?:\.(\d+))?', version_output)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def check_java(java: str) -> None:
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
    major = parse_java_major(out.stderr + out.stdout)
    if major is None or major < MIN_JAVA_MAJOR:
        found = f"Java {major}" if major else f"an unrecognised Java ({java})"
        raise CityScreenError(f"Kafka needs Java {MIN_JAVA_MAJOR}+ but found {found}: {JAVA_INSTALL_HINT}")


def libs_dir(cache_dir: Path, version: str) -> Path:
    return cache_dir / version / "libs"


def is_fetched(cache_dir: Path, version: str) -> bool:
    libs = libs_dir(cache_dir, version)
    return (libs / FETCH_MARKER).exists() and (libs / f"kafka_2.13-{version}.jar").exists()


def fetch_jars(cache_dir: Path, version: str, *, quiet: bool = True) -> Path:
    """Copy the broker's runtime jars into `cache_dir/<version>/libs` once; later calls return at once."""
    libs = libs_dir(cache_dir, version)
    if is_fetched(cache_dir, version):
        return libs
    mvn = shutil.which("mvn")
    if not mvn:
        raise CityScreenError(
            "Maven (mvn) not found: it fetches the Kafka jars once; install it "
            "(Debian: apt-get install maven) and run `cityscreen stack fetch`"
        )
    work = cache_dir / version
    work.mkdir(parents=True, exist_ok=True)
    pom = work / "pom.xml"
    pom.write_text(template_text("pom.xml"), encoding="utf-8")
    staging = work / "libs.partial"
    shutil.rmtree(staging, ignore_errors=True)
    argv = [
        mvn,
        *(["-q"] if quiet else []),
        "-B",
        "-f",
        str(pom),
        f"-Dkafka.version={version}",
        "dependency:copy-dependencies",
        f"-DoutputDirectory={staging}",
        "-DincludeScope=runtime",
    ]
    result = subprocess.run(argv, capture_output=True, text=True, check=False, cwd=work)
    if result.returncode != 0:
        output = "\n".join((result.stdout + result.stderr).splitlines()[-TAIL_LINES:])
        raise CityScreenError(
            f"fetching Kafka {version} jars with Maven failed (exit {result.returncode}); check network "
            f"access to the Maven repository and that version {version} exists (CITY_KAFKA__VERSION). "
            f"Last lines:\n{output}"
        )
    jars = sorted(p.name for p in staging.glob("*.jar"))
    if f"kafka_2.13-{version}.jar" not in jars:
        raise CityScreenError(f"Maven finished but kafka_2.13-{version}.jar is missing from {staging}")
    shutil.rmtree(libs, ignore_errors=True)
    staging.rename(libs)
    # The marker is written last, so an interrupted fetch is redone instead of half-used.
    (libs / FETCH_MARKER).write_text("\n".join(jars) + "\n", encoding="utf-8")
    return libs


def java_argv(java: str, libs: Path, log4j: Path, heap_mb: int, main: Iterable[str]) -> list[str]:
    return [
        java,
        f"-Xmx{heap_mb}m",
        f"-Xms{min(256, heap_mb)}m",
        "-XX:+ExitOnOutOfMemoryError",
        "-Djava.awt.headless=true",
        f"-Dlog4j.configuration=file:{log4j}",
        "-cp",
        f"{libs}/*",
        *main,
    ]


def is_formatted(log_dirs: Path) -> bool:
    return (log_dirs / "meta.properties").exists()


def new_cluster_id(java: str, libs: Path, log4j: Path) -> str:
    """A fresh KRaft cluster id; every node of one cluster is formatted with the same one."""
    base = java_argv(java, libs, log4j, 256, [])
    uuid = subprocess.run(
        [*base, "kafka.tools.StorageTool", "random-uuid"], capture_output=True, text=True, check=False
    )
    cluster_id = uuid.stdout.strip().splitlines()[-1] if uuid.stdout.strip() else ""
    if uuid.returncode != 0 or not cluster_id:
        raise CityScreenError(f"Kafka StorageTool random-uuid failed:\n{uuid.stdout}{uuid.stderr}")
    return cluster_id


def format_storage(
    java: str, libs: Path, conf_dir: Path, log_dirs: Path, cluster_id: Callable[[], str] | None = None
) -> None:
    """Give the KRaft log dir a cluster id once; a formatted dir is left alone so topics survive restarts."""
    if is_formatted(log_dirs):
        return
    base = java_argv(java, libs, conf_dir / "log4j.properties", 256, [])
    chosen = cluster_id() if cluster_id else new_cluster_id(java, libs, conf_dir / "log4j.properties")
    fmt = subprocess.run(
        [
            *base,
            "kafka.tools.StorageTool",
            "format",
            "-t",
            chosen,
            "-c",
            str(conf_dir / "server.properties"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if fmt.returncode != 0:
        raise CityScreenError(
            f"formatting Kafka storage in {log_dirs} failed; `cityscreen stack start --fresh` wipes it:\n"
            f"{fmt.stdout}{fmt.stderr}"
        )


def start_broker(
    *,
    java: str,
    libs: Path,
    conf_dir: Path,
    config: BrokerConfig,
    heap_mb: int,
    log_dir: Path,
    attached: bool,
    cluster_id: Callable[[], str] | None = None,
) -> ManagedProcess:
    conf_dir.mkdir(parents=True, exist_ok=True)
    config.log_dirs.mkdir(parents=True, exist_ok=True)
    (conf_dir / "server.properties").write_text(render_server_properties(config), encoding="utf-8")
    (conf_dir / "log4j.properties").write_text(render_log4j(config.log_file), encoding="utf-8")
    format_storage(java, libs, conf_dir, config.log_dirs, cluster_id)
    argv = java_argv(java, libs, conf_dir / "log4j.properties", heap_mb, ["kafka.Kafka"])
    argv.append(str(conf_dir / "server.properties"))
    # The JVM's own stdout/stderr (crashes, bad flags) go to the same file log4j appends to.
    name = "kafka" if config.node_id == 1 else f"kafka-{config.node_id}"
    return spawn(name, argv, log_dir=log_dir, attached=attached)


async def _ensure_topics(
    bootstrap: str, topics: Iterable[str], partitions: int, deadline: float, replication_factor: int = 1
) -> None:
    specs = project_specs(topics, partitions, replication_factor)
    left_s = max(1.0, deadline - time.monotonic())
    await ensure_topics(bootstrap, specs, replication_factor=replication_factor, timeout_s=left_s)


@contextlib.contextmanager
def _quiet(logger_name: str) -> Iterator[None]:
    """Connection-refused warnings are expected while the broker boots; they are not news to the user."""
    logger = logging.getLogger(logger_name)
    previous = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(previous)


async def _broker_answers(bootstrap: str, brokers: int = 1) -> bool:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=2000)
    try:
        with _quiet("aiokafka"):
            await admin.start()
            cluster = await admin.describe_cluster()
        return len(cluster.get("brokers") or []) >= brokers
    finally:
        await admin.close()


def run_async(coro_factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine from sync code, even when the caller already has an event loop (pytest-asyncio)."""
    import concurrent.futures

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro_factory())
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(coro_factory())).result()


def wait_broker_ready(
    broker: ManagedProcess,
    bootstrap: str,
    topics: Iterable[str],
    partitions: int,
    timeout_s: float,
    *,
    brokers: int = 1,
    replication_factor: int = 1,
) -> None:
    """Block until the cluster serves metadata with all `brokers` registered, then create the topics;
    fail with the broker's log tail otherwise."""
    broker.wait_ready(
        lambda: run_async(lambda: _broker_answers(bootstrap, brokers)),
        timeout_s=timeout_s,
        what=f"serving metadata with {brokers} broker(s)",
    )
    deadline = time.monotonic() + timeout_s
    run_async(lambda: _ensure_topics(bootstrap, topics, partitions, deadline, replication_factor))


def create_project_topics(
    bootstrap: str, topics: Iterable[str], partitions: int, timeout_s: float, replication_factor: int = 1
) -> None:
    """For a Kafka this package did not start (compose, a cluster): wait for it, then create the topics."""
    deadline = time.monotonic() + timeout_s
    while not _answers_quietly(bootstrap):
        if time.monotonic() > deadline:
            raise CityScreenError(
                f"Kafka at {bootstrap} did not answer within {timeout_s:.0f} s: check CITY_KAFKA__BOOTSTRAP"
            )
        time.sleep(0.5)
    run_async(lambda: _ensure_topics(bootstrap, topics, partitions, deadline, replication_factor))


def _answers_quietly(bootstrap: str) -> bool:
    try:
        return run_async(lambda: _broker_answers(bootstrap))
    except Exception:  # refused or timed out: not up yet
        return False
