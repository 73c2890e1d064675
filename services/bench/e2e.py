"""`cityscreen bench pipeline --end-to-end` and `cityscreen bench catchup`: from raw JSON to released frame.

After the aggregate-stage phases (services/bench/pipeline.py), on a fresh stack of its own (the aggregate
workers read the clean topics from their start, so these must hold only what this run's ingest writes):
1. load (not timed): generator events as raw JSON, `raw_per_record` events per record (1: as external
   producers send them), into the raw `city.ingest.*` topics, over an event-time span of their own (their
   windows are not the aggregate phase's);
2. end to end: an ingest worker and the aggregate worker(s), each in a new group, timed from both groups
   being assigned until the frame of the last window is published;
3. ingest alone: a second ingest worker in a new group (no aggregate worker), timed from its group being
   assigned until its counters (Redis) account for every loaded event, accepted or dead-lettered.
The catch-up bench is phase 3 on a backlog: N minutes of events at a rate, event times ending at the
load's end, as if producers kept sending while the pipeline was down.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import redis as redis_sync

from cityscreen.city import City
from cityscreen.errors import CityScreenError
from cityscreen.events import INGEST_TOPICS, RawEvent, encode, encode_many
from cityscreen.settings import Settings, to_env
from services.bench import probes
from services.bench.cpu import by_role, cpu_doc, cpu_seconds, stack_pids
from services.bench.data import (
    base_events,
    bench_producer,
    morning_start_ms,
    plan_load,
    raw_events,
    replicas_for,
)
from services.bench.report import rate_eps
from services.bench.workers import Say, alive, assigned_members
from services.stack.procs import spawn

if TYPE_CHECKING:
    from aiokafka.structs import RecordMetadata  # what a send's future resolves to

CLI = [sys.executable, "-m", "services.cli", "worker"]
LIMIT_S = 1800  # a phase that takes longer than this has failed


@dataclass
class RawLoad:
    events: int = 0
    records: int = 0
    windows: set[int] = field(default_factory=set)
    seconds: float = 0.0

    @property
    def last_window(self) -> int:
        return max(self.windows)


def raw_load(
    s: Settings,
    city: City,
    *,
    events: int,
    base_persons: int,
    span_s: int,
    start_ms: int,
    seed: int,
    say: Say,
) -> Iterator[RawEvent]:
    """`events` generator events over `span_s` from `start_ms`, persons replicated as the pipeline bench
    does when the base population makes too few."""
    plan = plan_load(events, base_persons, span_s, start_ms)
    base = base_events(city, plan, seed)
    plan.replicas = replicas_for(events, len(base))
    say(f"[raw] {len(base):,} base events x {plan.replicas} replicas over {span_s} s of event time")
    return raw_events(base, plan)


async def load_raw(
    bootstrap: str, raws: Iterator[RawEvent], per_record: int, window_ms: int, progress: Callable[[int], None]
) -> RawLoad:
    """Write raw events as JSON, `per_record` per record (1: one event object per record), to the raw
    topics by kind, in event-time order; the batches are built here (one send per ~1 MB, not per record)."""
    producer = bench_producer(bootstrap, linger_ms=50, request_timeout_ms=120_000)
    await producer.start()
    load, t0 = RawLoad(), time.monotonic()
    batches = {kind: producer.create_batch() for kind in INGEST_TOPICS}
    pending: dict[str, list[RawEvent]] = {kind: [] for kind in INGEST_TOPICS}
    sent: list[asyncio.Future[RecordMetadata]] = []

    async def flush(kind: str) -> None:
        sent.append(await producer.send_batch(batches[kind], INGEST_TOPICS[kind], partition=0))
        batches[kind] = producer.create_batch()

    async def append(kind: str, value: bytes) -> None:
        if batches[kind].append(key=None, value=value, timestamp=None) is None:
            await flush(kind)
            batches[kind].append(key=None, value=value, timestamp=None)
        load.records += 1

    try:
        for raw in raws:
            kind = str(raw.__struct_config__.tag)
            load.events += 1
            load.windows.add(raw.ts_ms - raw.ts_ms % window_ms)
            if per_record == 1:
                await append(kind, encode(raw))
            else:
                buf = pending[kind]
                buf.append(raw)
                if len(buf) >= per_record:
                    await append(kind, encode_many(buf))
                    pending[kind] = []
            if load.events % 100_000 == 0:
                progress(load.events)
                sent = [f for f in sent if not f.done()]
        for kind, rest in pending.items():
            if rest:
                await append(kind, encode_many(rest))
        for kind in INGEST_TOPICS:
            if batches[kind].record_count():
                await flush(kind)
        for f in sent:
            await f
    finally:
        await producer.stop()
    load.seconds = time.monotonic() - t0
    return load


def worker_env(s: Settings) -> dict[str, str]:
    """The workers' environment: the bench's settings, nothing tuned to the load (the ingest edge learns
    how many events a record holds, streams/ingest_loop.py: TakeSize)."""
    import os

    return {**os.environ, **to_env(s)}


def ingest_counted(r: redis_sync.Redis) -> int:
    """Events the ingest edges have counted so far: accepted plus dead-lettered."""
    st = probes.stats(r)
    return st.get("ingest.accepted", 0) + sum(n for k, n in st.items() if k.startswith("deadletter."))


def timed(
    s: Settings,
    env: dict[str, str],
    logs: Path,
    roles: list[tuple[str, str]],
    done: Callable[[], bool],
    progress: Callable[[float], None],
) -> tuple[dict[str, float], dict[str, float]]:
    """Spawn `cityscreen worker --role R --group G` per (R, G), and time from every group being assigned
    until `done()`. Returns the seconds from assignment and from spawn, and the CPU seconds each role's
    workers (their gate processes in) and each process of the local stack used from spawn to `done()`."""
    stack = stack_pids(s)
    stack_before = cpu_seconds(stack)
    t_spawn = time.monotonic()
    procs = [
        spawn(f"bench-{g}-{i}", [*CLI, "--role", r, "--group", g], log_dir=logs, env=env)
        for i, (r, g) in enumerate(roles)
    ]
    role_of = {p.name: r for p, (r, _) in zip(procs, roles, strict=True)}
    waiting = {g for _, g in roles}
    t_ready, last_say = None, t_spawn
    try:
        while True:
            alive(*procs)
            now = time.monotonic()
            if waiting:
                waiting = {g for g in waiting if not assigned_members(s.kafka.bootstrap, g)}
                if not waiting:
                    t_ready = time.monotonic()
            if done():
                t_done = time.monotonic()
                used = by_role(cpu_seconds({p.name: p.pid for p in procs}, children_apart=True), role_of)
                stack_used = {name: v - stack_before.get(name, 0.0) for name, v in cpu_seconds(stack).items()}
                break
            if now - last_say > 5:
                last_say = now
                progress(now - t_spawn)
            if now - t_spawn > LIMIT_S:
                raise CityScreenError(f"the benchmark phase did not finish within {LIMIT_S} s")
            time.sleep(0.05)
    finally:
        for p in procs:
            p.stop()
    t_ready = t_ready if t_ready is not None else t_spawn
    times = {"seconds": t_done - t_ready, "from_spawn_s": t_done - t_spawn, "startup_s": t_ready - t_spawn}
    return times, {**used, **stack_used}


def measure_ingest(
    s: Settings, env: dict[str, str], logs: Path, load: RawLoad, say: Say
) -> dict[str, object]:
    """The ingest edge alone, raw topics to clean topics."""
    r = redis_sync.Redis.from_url(s.redis.url)
    before, group = ingest_counted(r), f"bench-ingest-alone-{int(time.time())}"
    say(f"[ingest] one ingest worker in group {group}, until it has counted {load.events:,} events ...")
    done = lambda: ingest_counted(r) - before >= load.events  # noqa: E731
    return _measure(
        s,
        env,
        logs,
        load,
        say,
        "ingest",
        [("ingest", group)],
        done,
        "ingest group Stable -> its counters account for every loaded event",
    )


def measure_e2e(
    s: Settings, env: dict[str, str], logs: Path, load: RawLoad, workers: int, say: Say, phase: str = "e2e"
) -> dict[str, object]:
    """Ingest and aggregate workers together, raw records to the last window's published frame."""
    r = redis_sync.Redis.from_url(s.redis.url)
    stamp = int(time.time())
    ingest_group, aggregate_group = f"bench-ingest-{phase}-{stamp}", f"bench-aggregate-{phase}-{stamp}"
    coarsest, last = min(s.window.resolutions), load.last_window
    say(f"[{phase}] 1 ingest + {workers} aggregate worker(s), until window {last} is published ...")
    roles = [("ingest", ingest_group)] + [("aggregate", aggregate_group)] * workers
    done = lambda: last in probes.published_windows(r, coarsest)  # noqa: E731
    doc = _measure(
        s,
        env,
        logs,
        load,
        say,
        phase,
        roles,
        done,
        "ingest and aggregate groups Stable -> last window's coarsest frame in Redis",
    )
    return {**doc, "workers": workers}


def _measure(
    s: Settings,
    env: dict[str, str],
    logs: Path,
    load: RawLoad,
    say: Say,
    phase: str,
    roles: list[tuple[str, str]],
    done: Callable[[], bool],
    what: str,
) -> dict[str, object]:
    r = redis_sync.Redis.from_url(s.redis.url)
    before = ingest_counted(r)
    t, cpu_s = timed(
        s,
        env,
        logs,
        roles,
        done,
        lambda el: say(f"[{phase}] {ingest_counted(r) - before:,} events ingested, {el:.0f} s"),
    )
    eps = rate_eps(load.events, t["seconds"])
    say(f"[{phase}] {load.events:,} events in {t['seconds']:.2f} s from the group(s) assigned: {eps:,.0f}/s")
    cpu = cpu_doc(cpu_s, load.events, phase, say)
    return {"eps": round(eps, 1), "events": load.events, **_rounded(t), "timed": what, **cpu}


def _rounded(t: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 3) for k, v in t.items()}


def run_end_to_end(
    s: Settings,
    city: City,
    now_ms: int,
    say: Say,
    *,
    events: int,
    base_persons: int,
    span_s: int,
    per_record: int,
    workers: int,
    seed: int,
) -> dict[str, object]:
    """Phases 1-3 of the module docstring, on the fresh stack `s`."""
    # window.idle_close_s stays the live default (5 s): the clean topics are written while the aggregate
    # worker reads them, and with the 1 s of the aggregate phase a starved ingest worker (a loaded box)
    # paused long enough for open windows to close early and their remaining events to turn late (a run
    # dead-lettered ~60,000 as late and never finished). The last window's close waits that long.
    logs = s.data_dir / "bench-logs"
    start_ms = morning_start_ms(city, now_ms, hour=9)  # an hour after the aggregate phase's load
    raws = raw_load(
        s,
        city,
        events=events,
        base_persons=base_persons,
        span_s=span_s,
        start_ms=start_ms,
        seed=seed,
        say=say,
    )
    say(f"[raw] loading {events:,} raw events, {per_record} per record, into the raw topics (not timed) ...")
    window_ms = s.window.window_s * 1000
    load = asyncio.run(
        load_raw(s.kafka.bootstrap, raws, per_record, window_ms, lambda n: say(f"[raw] {n:,} events"))
    )
    say(
        f"[raw] {load.events:,} events in {load.records:,} records, {len(load.windows)} windows; "
        f"{load.seconds:.0f} s"
    )
    env = worker_env(s)
    e2e = measure_e2e(s, env, logs, load, workers, say)  # first: the clean topics are still empty
    ingest = measure_ingest(s, env, logs, load, say)
    return {
        "ingest": ingest,
        "e2e": e2e,
        "raw_load": {
            "events": load.events,
            "records": load.records,
            "events_per_record": per_record,
            "windows": len(load.windows),
            "seconds": round(load.seconds, 1),
            "start_ms": start_ms,
            "span_s": span_s,
            "idle_close_s": s.window.idle_close_s,
        },
    }
