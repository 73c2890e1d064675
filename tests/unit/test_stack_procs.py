"""The process supervisor: logs, readiness failures with the log tail, group stop, and the state file."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cityscreen.errors import CityScreenError
from services.stack.procs import ManagedProcess, pid_alive, spawn, tail
from services.stack.redis_server import redis_env
from services.stack.state import StackState, clear_state, read_state, write_state
from tests.support.waiting import wait_for


@pytest.fixture
def run_python(tmp_path: Path) -> Iterator[Callable[[str], ManagedProcess]]:
    children: list[ManagedProcess] = []

    def start(code: str) -> ManagedProcess:
        children.append(spawn(f"child{len(children)}", [sys.executable, "-c", code], log_dir=tmp_path))
        return children[-1]

    yield start
    for child in children:
        child.stop(2.0)


def make_state(tmp_path: Path, **overrides: object) -> StackState:
    fields: dict[str, object] = {
        "data_dir": str(tmp_path),
        "kafka_port": 1,
        "kafka_controller_port": 2,
        "kafka_pid": os.getpid(),
        "redis_port": 3,
        "redis_pid": os.getpid(),
        "bootstrap": "127.0.0.1:1",
        "redis_url": "redis://127.0.0.1:3/0",
        "owner_pid": os.getpid(),
        "started_ms": 0,
    }
    fields.update(overrides)
    return StackState(**fields)  # type: ignore[arg-type]


def test_output_goes_to_the_named_log(run_python: Callable[[str], ManagedProcess], tmp_path: Path) -> None:
    proc = run_python("import sys; print('hello out'); print('hello err', file=sys.stderr)")
    proc.popen.wait(10)
    assert proc.log_path == tmp_path / "child0.log"
    assert "hello out" in proc.tail() and "hello err" in proc.tail()


def test_a_child_that_exits_before_ready_explains_itself(run_python: Callable[[str], ManagedProcess]) -> None:
    proc = run_python("import sys; [print(f'line {i}') for i in range(30)]; sys.exit(3)")
    with pytest.raises(CityScreenError) as err:
        proc.wait_ready(lambda: False, timeout_s=30, what="listening")
    message = str(err.value)
    assert "child0 exited before it was listening (exit code 3)" in message
    assert str(proc.log_path) in message
    assert "line 29" in message and "line 9\n" not in message  # only the last 20 lines


def test_wait_ready_returns_once_the_probe_passes(run_python: Callable[[str], ManagedProcess]) -> None:
    proc = run_python("import time; time.sleep(30)")
    calls: list[int] = []

    def second_call() -> bool:
        if len(calls) >= 2:
            return True
        calls.append(1)
        return False

    proc.wait_ready(second_call, timeout_s=30)
    assert proc.is_alive() and len(calls) == 2


def test_stop_ends_the_whole_process_group(run_python: Callable[[str], ManagedProcess]) -> None:
    proc = run_python(
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(60)\n"
    )

    def printed_pid() -> str | None:
        lines = proc.tail().splitlines()
        return lines[-1] if lines and lines[-1].isdigit() else None

    grandchild = int(wait_for(printed_pid, timeout_s=20, what="the grandchild's pid", interval_s=0.05))
    assert pid_alive(grandchild)
    proc.stop(5.0)
    assert not proc.is_alive()
    wait_for(lambda: not pid_alive(grandchild), timeout_s=10, what="the grandchild to end", interval_s=0.05)


def test_a_missing_program_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CityScreenError, match="no-such-program-xyz not found on PATH"):
        spawn("x", ["no-such-program-xyz"], log_dir=tmp_path)


def test_tail_of_a_missing_file_is_empty(tmp_path: Path) -> None:
    assert tail(tmp_path / "nope.log") == ""


def test_state_round_trips(tmp_path: Path) -> None:
    state = make_state(tmp_path, kafka_port=40001)
    write_state(state)
    assert read_state(tmp_path) == state
    clear_state(tmp_path)
    assert read_state(tmp_path) is None


def test_a_cluster_state_names_every_broker_and_round_trips(tmp_path: Path) -> None:
    state = make_state(tmp_path, kafka_pid=11, more_kafka_pids=[12, 13], redis_pid=14, replication_factor=3)
    assert state.pids() == {"kafka": 11, "kafka-2": 12, "kafka-3": 13, "redis": 14}
    write_state(state)
    assert read_state(tmp_path) == state


def test_live_pids_ignore_a_pid_reused_by_another_program(tmp_path: Path) -> None:
    # This pytest process is alive but is neither kafka.Kafka nor redis-server: never signal it.
    assert make_state(tmp_path).live_pids() == {}


def test_tail_skips_java_stack_frames(tmp_path: Path) -> None:
    log = tmp_path / "kafka.log"
    frames = "".join(f"\tat kafka.Frame{i}(Kafka.scala:{i})\n" for i in range(40))
    log.write_text(f"INFO starting\njava.lang.RuntimeException: node id 7 != 1\n{frames}\t... 3 more\n")
    assert tail(log, 2) == "INFO starting\njava.lang.RuntimeException: node id 7 != 1"


@pytest.mark.parametrize(
    ("preload", "kept"),
    [
        ("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1", None),
        ("/opt/libjemalloc.so /usr/lib/faketime/libfaketimeMT.so.1", "/opt/libjemalloc.so"),
        (None, None),
    ],
)
def test_redis_runs_without_libfaketime_and_keeps_other_preloads(
    monkeypatch: pytest.MonkeyPatch, preload: str | None, kept: str | None
) -> None:
    if preload is None:
        monkeypatch.delenv("LD_PRELOAD", raising=False)
    else:
        monkeypatch.setenv("LD_PRELOAD", preload)
    monkeypatch.setenv("FAKETIME", "+400d")
    env = redis_env()
    assert env.get("LD_PRELOAD") == kept
    assert env["PATH"] == os.environ["PATH"]


def test_data_of_a_stack_with_another_broker_count_is_refused_with_the_fix(tmp_path: Path) -> None:
    from cityscreen.errors import CityScreenError
    from services.stack.local import check_broker_count

    (tmp_path / "kafka-data").mkdir()
    (tmp_path / "kafka-data" / "meta.properties").write_text("node.id=1\n")  # a single broker's data
    with pytest.raises(CityScreenError, match=r"1-broker stack, not 3.*--fresh"):
        check_broker_count(tmp_path, 3)
    check_broker_count(tmp_path, 1)  # the same count is fine, and is recorded
    with pytest.raises(CityScreenError, match="--brokers 1"):
        check_broker_count(tmp_path, 2)
    check_broker_count(tmp_path / "new", 3)  # a fresh dir takes any count
    check_broker_count(tmp_path / "new", 3)
