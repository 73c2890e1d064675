"""The local redis-server: loopback only, its dump under the data dir, ready when it answers PING."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from cityscreen.errors import CityScreenError
from services.stack.procs import ManagedProcess, spawn

REDIS_INSTALL_HINT = "install it (Debian: apt-get install redis-server) or put redis-server on PATH"


def redis_url(port: int, db: int = 0) -> str:
    return f"redis://127.0.0.1:{port}/{db}"


def redis_argv(binary: str, port: int, data_dir: Path) -> list[str]:
    return [
        binary,
        "--bind",
        "127.0.0.1",
        "--port",
        str(port),
        "--dir",
        str(data_dir),
        # Frames are derived data with a TTL; an occasional snapshot keeps the map's history across restarts.
        "--save",
        "300 1",
        "--appendonly",
        "no",
        "--daemonize",
        "no",
        "--logfile",
        "",
    ]


def redis_env() -> dict[str, str]:
    """The environment for redis-server, without libfaketime: `make test` also runs tests under a
    shifted clock (`faketime`), and redis-server does not start under it (libfaketime's clock_gettime
    recursion guard fails at its start-up). Redis keeps the real clock; its TTLs are relative."""
    env = dict(os.environ)
    preload = [p for p in env.pop("LD_PRELOAD", "").split() if "faketime" not in p]
    if preload:
        env["LD_PRELOAD"] = " ".join(preload)
    return env


def start_redis(*, port: int, data_dir: Path, log_dir: Path, attached: bool) -> ManagedProcess:
    binary = shutil.which("redis-server")
    if not binary:
        raise CityScreenError(f"redis-server not found: {REDIS_INSTALL_HINT}")
    data_dir.mkdir(parents=True, exist_ok=True)
    argv = redis_argv(binary, port, data_dir)
    return spawn("redis", argv, log_dir=log_dir, attached=attached, env=redis_env())


def ping(url: str) -> bool:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
    try:
        return bool(client.ping())
    finally:
        client.close()


def wait_redis_ready(proc: ManagedProcess, url: str, timeout_s: float) -> None:
    proc.wait_ready(lambda: ping(url), timeout_s=timeout_s, what="answering PING")
