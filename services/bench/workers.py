"""The timed phases of `cityscreen bench pipeline` that run processes: the textbook Faust peer and our
aggregate worker(s); and what every benchmark's processes share: the liveness check, group assignment."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import redis as redis_sync

from cityscreen.errors import CityScreenError
from cityscreen.settings import Settings
from services.bench import probes
from services.bench.cpu import by_role, cpu_doc, cpu_seconds
from services.bench.data import LoadStats
from services.bench.report import rate_eps
from services.stack.procs import ManagedProcess, spawn

PEER_TOPIC = "bench.peer.events.v1"  # bench only: clean events, one JSON event per record

Say = Callable[[str], None]


def alive(*procs: ManagedProcess) -> None:
    """Fail the benchmark, with the end of its log, when one of its processes has exited."""
    for proc in procs:
        if not proc.is_alive():
            raise CityScreenError(proc.failure_message("exited during the benchmark"))


def assigned_members(bootstrap: str, group: str) -> int:
    """The members of `group` once it is Stable (its partitions assigned); 0 before that."""
    try:
        state, members = asyncio.run(probes.group_members(bootstrap, group))
    except Exception:  # the group does not exist yet
        return 0
    return members if state == "Stable" else 0


def measure_peer(env: dict[str, str], logs: Path, singles: int, cap_s: float, say: Say) -> dict[str, object]:
    say(
        f"[peer] textbook Faust agent on the one-per-record topic, until {singles:,} events "
        f"or {cap_s:.0f} s ..."
    )
    status_file = logs / "peer-status.json"
    status_file.parent.mkdir(parents=True, exist_ok=True)
    (Path(env["CITY_DATA_DIR"]) / "faust").mkdir(
        parents=True, exist_ok=True
    )  # Faust makes only the last level
    status_file.unlink(missing_ok=True)
    proc = spawn(
        "bench-peer",
        [sys.executable, "-m", "streams.bench_peer", PEER_TOPIC, str(status_file)],
        log_dir=logs,
        env=env,
    )
    seen = {"events": 0, "first_ms": 0, "last_ms": 0}
    try:
        deadline = time.monotonic() + cap_s + 90  # start-up and group join come before the first event
        last_say = time.monotonic()
        while time.monotonic() < deadline:
            alive(proc)
            time.sleep(0.5)
            try:
                seen = json.loads(status_file.read_text())
            except (OSError, ValueError):
                continue
            elapsed_s = (seen["last_ms"] - seen["first_ms"]) / 1000
            if time.monotonic() - last_say > 5:
                last_say = time.monotonic()
                say(
                    f"[peer] {seen['events']:,} events, {elapsed_s:.0f} s, "
                    f"{rate_eps(seen['events'], elapsed_s):,.0f}/s"
                )
            if seen["events"] >= singles or (seen["first_ms"] and elapsed_s >= cap_s):
                break
    finally:
        proc.stop()
    elapsed_s = (seen["last_ms"] - seen["first_ms"]) / 1000
    eps = rate_eps(seen["events"], elapsed_s)
    say(f"[peer] {seen['events']:,} events in {elapsed_s:.2f} s: {eps:,.0f} events/s")
    return {
        "eps": round(eps, 1),
        "events": seen["events"],
        "seconds": round(elapsed_s, 3),
        "topic": PEER_TOPIC,
        "timed": "first to last event processed, as the peer process saw them",
    }


def measure_ours(
    s: Settings, env: dict[str, str], logs: Path, stats: LoadStats, workers: int, say: Say
) -> dict[str, object]:
    group = f"bench-aggregate-{int(time.time())}"
    r = redis_sync.Redis.from_url(s.redis.url)
    before = probes.stats(r).get("windows_published", 0)
    say(
        f"[ours] {workers} aggregate worker(s) in group {group}, until window {max(stats.windows)} "
        "is published ..."
    )
    argv = [sys.executable, "-m", "services.cli", "worker", "--role", "aggregate", "--group", group]
    t_spawn = time.monotonic()
    procs = [spawn(f"bench-aggregate-{i}", argv, log_dir=logs, env=env) for i in range(workers)]
    try:
        t_ready, t_done = _await_last_window(s, r, procs, group, max(stats.windows), before, t_spawn, say)
        used = cpu_seconds({p.name: p.pid for p in procs}, children_apart=True)
        cpu_s = by_role(used, {p.name: "aggregate" for p in procs})
        st = probes.stats(r)
    finally:
        for p in procs:
            p.stop()
    seconds = t_done - t_ready
    eps = rate_eps(stats.events, seconds)
    say(
        f"[ours] {stats.events:,} events in {seconds:.2f} s after the group was assigned: {eps:,.0f} events/s"
    )
    cpu = cpu_doc(cpu_s, stats.events, "ours", say)
    return {
        "eps": round(eps, 1),
        "events": stats.events,
        "seconds": round(seconds, 3),
        "workers": workers,
        "startup_s": round(t_ready - t_spawn, 3),
        "eps_from_spawn": round(rate_eps(stats.events, t_done - t_spawn), 1),
        "windows_published": st.get("windows_published", 0) - before,
        "late_events": st.get("late_events", 0),
        "timed": "consumer group Stable (partitions assigned) -> last window's coarsest frame in Redis",
        **cpu,
    }


def _await_last_window(
    s: Settings, r: redis_sync.Redis, procs: list[ManagedProcess], group: str, last_window: int,
    before: int, t_spawn: float, say: Say,
) -> tuple[float, float]:  # fmt: skip
    """Wait until `last_window`'s coarsest frame is in Redis; returns (group assigned, frame seen) on
    the monotonic clock (assigned = spawned if the group was never seen Stable)."""
    coarsest = min(s.window.resolutions)
    t_ready = None
    last_say = t_spawn
    while True:
        alive(*procs)
        now = time.monotonic()
        if t_ready is None:
            members = assigned_members(s.kafka.bootstrap, group)
            if members:
                t_ready = time.monotonic()
                say(f"[ours] group assigned {t_ready - t_spawn:.1f} s after spawn ({members} member(s))")
        if last_window in probes.published_windows(r, coarsest):
            return (t_ready if t_ready is not None else t_spawn), time.monotonic()
        if now - last_say > 5:
            last_say = now
            st = probes.stats(r)
            say(
                f"[ours] {st.get('records', 0):,} records applied, "
                f"{st.get('windows_published', 0) - before} windows published, {now - t_spawn:.0f} s"
            )
        if now - t_spawn > 900:
            raise CityScreenError("the aggregate worker did not publish the last window within 900 s")
        time.sleep(0.05)
