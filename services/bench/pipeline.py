"""`cityscreen bench pipeline`: limit, textbook peer and our aggregate worker, in one run on the same events.

Phases (only 2-5 are timed, each on its own):
1. load: generator events -> ingest edge's pure code -> clean topics (batched records, partitioned by
   person), plus a prefix one JSON event per record on the peer's bench-only topic;
2. limit: a plain aiokafka consumer decodes every clean event (and, as an extra, the one-per-record copy);
3. peer: the textbook Faust agent (streams/bench_peer.py) on the one-per-record prefix, capped in time;
4. ours: `cityscreen worker --role aggregate` process(es) in one group, timed from the group being
   assigned until the frame of the last window is in Redis (the release sink's frame index).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import redis as redis_sync

from cityscreen.city import load_city
from cityscreen.errors import CityScreenError
from cityscreen.events import CLEAN_TOPICS
from cityscreen.settings import Settings, to_env
from services.bench import probes
from services.bench.data import (
    LoadStats,
    base_events,
    clean_batches,
    load_kafka,
    morning_start_ms,
    plan_load,
    raw_events,
    replicas_for,
)
from services.bench.report import (
    end_to_end_lines,
    end_to_end_result,
    pipeline_result,
    rate_eps,
    summary_lines,
)
from services.bench.stack import bench_stack
from services.generator.sinks import ensure_topics
from services.stack.procs import ManagedProcess, spawn

PEER_TOPIC = "bench.peer.events.v1"  # bench only: clean events, one JSON event per record

Say = Callable[[str], None]


@dataclass
class PipelineOptions:
    events: int = 2_000_000
    base_persons: int = 250_000
    span_s: int = 300
    peer_events: int = 0  # events also written one per record (limit and peer); 0 = every event
    peer_seconds: float = 45.0
    workers: int = 1
    use_running: bool = False
    # the load ends, so its last window closes only on idleness: that wait is part of the time; 1 s is
    # safe here because a topic also counts as quiet only once it is read to its end offset
    idle_close_s: float = 1.0
    seed: int = 42
    end_to_end: bool = False  # then also raw JSON through the real ingest edge (services/bench/e2e.py)
    raw_per_record: int = 1  # events per raw record in that mode: 1, as external producers send them


def _per_reason(counts: dict[str, int]) -> str:
    return ", ".join(f"{reason} {n:,}" for reason, n in sorted(counts.items()))


def rejected_line(stats: LoadStats) -> str:
    """What the ingest edge rejected while loading, per reason (only the count and the reason: a dead
    letter's detail may quote a value)."""
    if not stats.rejected:
        return "the ingest edge rejected no event"
    return f"the ingest edge rejected {stats.dead:,} events: {_per_reason(stats.rejected)}"


def run_pipeline(settings: Settings, opts: PipelineOptions, say: Say) -> dict[str, object]:
    if opts.end_to_end and opts.use_running:
        raise CityScreenError("--end-to-end needs fresh stacks (its workers read topics from their start)")
    with bench_stack(settings, "pipeline", opts.use_running, say) as s:
        doc = _run(s, opts, say)
    if not opts.end_to_end:
        return doc
    from services.bench.e2e import run_end_to_end

    with bench_stack(settings, "e2e", False, say) as s:
        city = load_city(s.generator.city_file)
        more = run_end_to_end(
            s,
            city,
            int(time.time() * 1000),
            say,
            events=opts.events,
            base_persons=opts.base_persons,
            span_s=opts.span_s,
            per_record=opts.raw_per_record,
            workers=opts.workers,
            seed=opts.seed,
        )
    e2e, ingest = cast(dict, more["e2e"]), cast(dict, more["ingest"])
    return end_to_end_result({**doc, **more}, e2e["eps"], ingest["eps"])


def _run(s: Settings, opts: PipelineOptions, say: Say) -> dict[str, object]:
    s = s.model_copy(update={"window": s.window.model_copy(update={"idle_close_s": opts.idle_close_s})})
    bootstrap, parts = s.kafka.bootstrap, s.kafka.partitions
    city = load_city(s.generator.city_file)
    now_ms = int(
        time.time() * 1000
    )  # the bench's one reading of the calendar: its load starts at 08:00 today
    plan = plan_load(opts.events, opts.base_persons, opts.span_s, morning_start_ms(city, now_ms))
    say(
        f"[load] simulating {plan.base_persons:,} persons over {plan.span_s} s of event time from 08:00 "
        "(loading is not timed) ..."
    )
    base = base_events(city, plan, opts.seed)
    plan.replicas = replicas_for(opts.events, len(base))
    say(
        f"[load] {len(base):,} base events x {plan.replicas} replicas (distinct identifiers) -> "
        f"{opts.events:,} events through the ingest edge's validator into Kafka ..."
    )
    asyncio.run(ensure_topics(bootstrap, [PEER_TOPIC], parts))
    stats = LoadStats()
    t0 = time.monotonic()
    tick = _ticker(say, "load", opts.events)
    batches = clean_batches(raw_events(base, plan), s, city, stats, s.window.window_s * 1000, now_ms=now_ms)
    singles = asyncio.run(
        load_kafka(
            bootstrap,
            batches,
            single_topic=PEER_TOPIC,
            single_events=opts.peer_events or opts.events,
            progress=tick,
        )
    )
    load_s = time.monotonic() - t0
    say(
        f"[load] {stats.events:,} clean events in {stats.records:,} records, {len(stats.windows)} windows, "
        f"{singles:,} single-event records; {load_s:.0f} s"
    )
    say(f"[load] {rejected_line(stats)}")
    faults = stats.generator_faults()
    if faults:
        raise CityScreenError(
            f"the ingest edge rejected bench events the generator must never make ({_per_reason(faults)}): "
            "a generator bug, since its events must all pass the edge's validator "
            "(tests/unit/test_generator_in_city.py)"
        )

    # limit_eps: the events as external producers send them, one JSON event per record (the issue's
    # "plain consumer that only decodes the events"); limit_batched_eps: the same consumer on the
    # batched records ours reads, reported beside it with its own ratio
    say("[limit] plain aiokafka consumer, decode only, one event per record ...")
    limit_n, limit_s = asyncio.run(
        probes.limit_consume(bootstrap, [PEER_TOPIC], singles, _ticker(say, "limit", singles))
    )
    limit_eps = rate_eps(limit_n, limit_s)
    say(f"[limit] {limit_n:,} events in {limit_s:.2f} s: {limit_eps:,.0f} events/s")
    say("[limit] the same on the batched clean topics ...")
    batched_n, batched_s = asyncio.run(
        probes.limit_consume(
            bootstrap, list(CLEAN_TOPICS.values()), stats.events, _ticker(say, "limit-batched", stats.events)
        )
    )
    limit_batched_eps = rate_eps(batched_n, batched_s)
    say(f"[limit] batched: {batched_n:,} events in {batched_s:.2f} s: {limit_batched_eps:,.0f} events/s")

    env = {**os.environ, **to_env(s)}
    logs = s.data_dir / "bench-logs"
    peer = _measure_peer(env, logs, singles, opts.peer_seconds, say)
    ours = _measure_ours(s, env, logs, stats, opts.workers, say)

    return pipeline_result(
        limit_eps,
        cast(float, peer["eps"]),
        cast(float, ours["eps"]),
        limit_batched_eps=limit_batched_eps,
        events=stats.events,
        limit={"events": limit_n, "seconds": round(limit_s, 3), "topic": PEER_TOPIC},
        limit_batched={"events": batched_n, "seconds": round(batched_s, 3), "topics": "clean (batched)"},
        peer=peer,
        ours=ours,
        load={
            "seconds": round(load_s, 1),
            "records": stats.records,
            "rejected": dict(sorted(stats.rejected.items())),  # dead letters per reason while loading
            "windows": len(stats.windows),
            "base_persons": plan.base_persons,
            "replicas": plan.replicas,
            "span_s": plan.span_s,
            "first_ts_ms": stats.first_ts_ms,
            "last_ts_ms": stats.last_ts_ms,
            "clean_format": "clean batches (cityscreen.clean_batch), 1000 events per record, keyed by person",
            "single_format": "one clean event per record (JSON): every event, or the first --peer-events",
        },
        settings={
            "partitions": s.kafka.partitions,
            "window_s": s.window.window_s,
            "grace_s": s.window.grace_s,
            "h3_res": s.window.h3_res,
            "resolutions": s.window.resolutions,
            "max_batch_events": s.window.max_batch_events,
            "flush_s": s.window.flush_s,
            "idle_close_s": s.window.idle_close_s,
            "dp_enabled": s.privacy.dp_enabled,
            "stack": "running" if opts.use_running else "fresh",
        },
        machine={"cores": os.cpu_count(), "python": sys.version.split()[0], "load_avg": os.getloadavg()},
    )


def _ticker(say: Say, phase: str, total: int, every_s: float = 5.0) -> Callable[[int], None]:
    state = {"n": 0, "at": time.monotonic(), "t0": time.monotonic()}

    def tick(n: int) -> None:
        state["n"] = n if phase != "load" else state["n"] + n
        now = time.monotonic()
        if now - state["at"] >= every_s:
            state["at"] = now
            say(f"[{phase}] {state['n']:,}/{total:,} events, {now - state['t0']:.0f} s")

    return tick


def _measure_peer(env: dict[str, str], logs: Path, singles: int, cap_s: float, say: Say) -> dict[str, object]:
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
            _alive(proc)
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


def _measure_ours(
    s: Settings, env: dict[str, str], logs: Path, stats: LoadStats, workers: int, say: Say
) -> dict[str, object]:
    group = f"bench-aggregate-{int(time.time())}"
    coarsest = min(s.window.resolutions)
    last_window = max(stats.windows)
    r = redis_sync.Redis.from_url(s.redis.url)
    before = probes.stats(r).get("windows_published", 0)
    say(f"[ours] {workers} aggregate worker(s) in group {group}, until window {last_window} is published ...")
    argv = [sys.executable, "-m", "services.cli", "worker", "--role", "aggregate", "--group", group]
    t_spawn = time.monotonic()
    procs = [spawn(f"bench-aggregate-{i}", argv, log_dir=logs, env=env) for i in range(workers)]
    try:
        t_ready = None
        last_say = t_spawn
        while True:
            for p in procs:
                _alive(p)
            now = time.monotonic()
            if t_ready is None:
                try:
                    state, members = asyncio.run(probes.group_members(s.kafka.bootstrap, group))
                except Exception:  # the group does not exist yet
                    state, members = "", 0
                if state == "Stable" and members > 0:
                    t_ready = time.monotonic()
                    say(f"[ours] group assigned {t_ready - t_spawn:.1f} s after spawn ({members} member(s))")
            if last_window in probes.published_windows(r, coarsest):
                t_done = time.monotonic()
                break
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
        st = probes.stats(r)
    finally:
        for p in procs:
            p.stop()
    t_ready = t_ready if t_ready is not None else t_spawn
    seconds = t_done - t_ready
    eps = rate_eps(stats.events, seconds)
    say(
        f"[ours] {stats.events:,} events in {seconds:.2f} s after the group was assigned: {eps:,.0f} events/s"
    )
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
    }


def _alive(proc: ManagedProcess) -> None:
    if not proc.is_alive():
        raise CityScreenError(proc.failure_message("exited during the benchmark"))


def write_result(path: Path, result: dict[str, object], say: Say) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    rates = (result["limit_eps"], result["peer_eps"], result["ours_eps"], result["limit_batched_eps"])
    for line in summary_lines(*rates):  # type: ignore[arg-type]
        say(line)
    if "e2e_eps" in result:
        e2e = [float(cast(float, result[k])) for k in ("e2e_eps", "ingest_eps", "limit_eps", "peer_eps")]
        for line in end_to_end_lines(*e2e):
            say(line)
    say(f"wrote {path}")
