"""`data_dir/stack.json`: where a running local stack is (ports, pids, bootstrap, redis url), so `stop`,
`status`, `up` and other commands can find it."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from services.stack.procs import pid_alive, pid_cmdline

STATE_FILE = "stack.json"
# What each recorded pid must still be running; a reused pid belonging to something else is never signalled.
CMDLINE_MARKERS = {"kafka": "kafka.Kafka", "redis": "redis-server"}


@dataclass(frozen=True)
class StackState:
    data_dir: str
    kafka_port: int
    kafka_controller_port: int
    kafka_pid: int
    redis_port: int
    redis_pid: int
    bootstrap: str
    redis_url: str
    owner_pid: int
    started_ms: int
    # brokers 2..n of a `--brokers n` cluster (node 1 is kafka_pid)
    more_kafka_pids: list[int] = field(default_factory=list)
    replication_factor: int = 1

    def pids(self) -> dict[str, int]:
        more = {f"kafka-{i}": pid for i, pid in enumerate(self.more_kafka_pids, start=2)}
        return {"kafka": self.kafka_pid, **more, "redis": self.redis_pid}

    def live_pids(self) -> dict[str, int]:
        """The recorded processes that are still running what they were started as."""
        return {
            name: pid
            for name, pid in self.pids().items()
            if pid_alive(pid) and CMDLINE_MARKERS[name.split("-")[0]] in pid_cmdline(pid)
        }


def state_path(data_dir: Path) -> Path:
    return data_dir / STATE_FILE


def write_state(state: StackState) -> Path:
    path = state_path(Path(state.data_dir))
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(asdict(state), indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def read_state(data_dir: Path) -> StackState | None:
    try:
        raw = json.loads(state_path(data_dir).read_text(encoding="utf-8"))
        return StackState(**raw)
    except (FileNotFoundError, json.JSONDecodeError, TypeError):
        return None


def clear_state(data_dir: Path) -> None:
    state_path(data_dir).unlink(missing_ok=True)
