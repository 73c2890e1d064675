"""Process supervision: spawn a child in its own process group with a log file, wait until it is ready,
stop it (and everything it started) cleanly, and explain a failure with the tail of its log."""

from __future__ import annotations

import contextlib
import functools
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType

from cityscreen.errors import CityScreenError
from cityscreen.lifetime import die_with_parent

TAIL_LINES = 20
_JAVA_FRAME = re.compile(r"^\s+(at |\.\.\. \d+ more)")


def tail(path: Path, lines: int = TAIL_LINES) -> str:
    """The last `lines` lines of a text file ('' when it does not exist)."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            data = fh.read()
    except FileNotFoundError:
        return ""
    # Java stack frames would fill the tail; the exception line above them is the one that explains.
    kept = [line for line in data.decode("utf-8", "replace").splitlines() if not _JAVA_FRAME.match(line)]
    return "\n".join(kept[-lines:])


def pid_alive(pid: int) -> bool:
    """True when `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def pid_cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


def kill_group(pgid: int, timeout_s: float) -> None:
    """SIGTERM a process group, then SIGKILL whatever is left after `timeout_s`."""
    kill_groups([pgid], timeout_s)


def kill_groups(pgids: Sequence[int], timeout_s: float) -> None:
    """SIGTERM several process groups at once, then SIGKILL what is left after `timeout_s`: the brokers
    of a cluster stop together, so none waits out its timeout for the others to take its partitions."""
    for pgid in pgids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and any(pid_alive(p) for p in pgids):
        time.sleep(0.05)
    for pgid in pgids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)


class ManagedProcess:
    """A child started by `spawn`: the leader of its own process group, writing to `log_path`."""

    def __init__(self, name: str, popen: subprocess.Popen[bytes], log_path: Path) -> None:
        self.name = name
        self.popen = popen
        self.log_path = log_path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def is_alive(self) -> bool:
        return self.popen.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    def tail(self, lines: int = TAIL_LINES) -> str:
        return tail(self.log_path, lines)

    def failure_message(self, what: str) -> str:
        """`what`, the child's exit code if it exited, and the end of its log with the log's path."""
        code = self.popen.poll()
        status = f" (exit code {code})" if code is not None else ""
        return (
            f"{self.name} {what}{status}. Last {TAIL_LINES} lines of {self.log_path}:\n"
            f"{self.tail() or '(log is empty)'}"
        )

    def wait_ready(self, probe: Callable[[], bool], *, timeout_s: float, what: str = "ready") -> None:
        """Poll `probe` until it returns True; fail with the log tail if the child exits or time runs out."""
        deadline = time.monotonic() + timeout_s
        while True:
            if not self.is_alive():
                raise CityScreenError(self.failure_message(f"exited before it was {what}"))
            with contextlib.suppress(Exception):
                if probe():
                    return
            if time.monotonic() > deadline:
                raise CityScreenError(self.failure_message(f"was not {what} within {timeout_s:.0f} s"))
            time.sleep(0.1)

    def stop(self, timeout_s: float = 15.0) -> int | None:
        """Stop the whole process group (SIGTERM, then SIGKILL after `timeout_s`) and reap the child."""
        if self.popen.poll() is None:
            kill_group(self.popen.pid, timeout_s)
        else:
            # The leader is gone; anything it left in its group goes too.
            kill_group(self.popen.pid, 0.0)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=5)
        return self.popen.poll()

    def __enter__(self) -> ManagedProcess:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def spawn(
    name: str,
    argv: Sequence[str],
    *,
    log_dir: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    attached: bool = True,
) -> ManagedProcess:
    """Start `argv` in a new process group, stdout and stderr appended to `log_dir/<name>.log`.

    `attached` children die with this process (SIGTERM from the kernel); detached ones outlive it, for
    `cityscreen stack start` in the background.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    with log_path.open("ab") as log:
        log.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S')} starting: {' '.join(argv)}\n".encode())
        log.flush()
        try:
            popen = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                start_new_session=True,
                preexec_fn=functools.partial(die_with_parent, os.getpid()) if attached else None,
            )
        except FileNotFoundError as exc:
            raise CityScreenError(f"cannot start {name}: {argv[0]} not found on PATH") from exc
    return ManagedProcess(name, popen, log_path)


@contextlib.contextmanager
def sigterm_raises_interrupt() -> Iterator[None]:
    """Treat SIGTERM like Ctrl-C inside the block, so one `finally` stops the children on either."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
