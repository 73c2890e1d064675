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

from cityscreen.city import load_city
from cityscreen.errors import CityScreenError
from cityscreen.events import CLEAN_TOPICS
from cityscreen.settings import Settings, to_env
from services.bench import probes
from services.bench.data import (
    LoadPlan,
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
from services.bench.workers import PEER_TOPIC, Say, measure_ours, measure_peer
from services.generator.sinks import ensure_topics


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
    e2e, ingest = cast(dict[str, float], more["e2e"]), cast(dict[str, float], more["ingest"])
    return end_to_end_result({**doc, **more}, e2e["eps"], ingest["eps"])


@dataclass
class _Loaded:
    """What the (untimed) load phase put into Kafka."""

    plan: LoadPlan
    stats: LoadStats
    singles: int  # single-event records on PEER_TOPIC
    seconds: float


@dataclass
class _Limit:
    """The plain consumer's run over one set of topics."""

    events: int
    seconds: float

    @property
    def eps(self) -> float:
        return rate_eps(self.events, self.seconds)


def _run(s: Settings, opts: PipelineOptions, say: Say) -> dict[str, object]:
    s = s.model_copy(update={"window": s.window.model_copy(update={"idle_close_s": opts.idle_close_s})})
    loaded = _load(s, opts, say)
    limit, batched = _measure_limit(s.kafka.bootstrap, loaded, say)
    env = {**os.environ, **to_env(s)}
    logs = s.data_dir / "bench-logs"
    peer = measure_peer(env, logs, loaded.singles, opts.peer_seconds, say)
    ours = measure_ours(s, env, logs, loaded.stats, opts.workers, say)
    return pipeline_result(
        limit.eps,
        cast(float, peer["eps"]),
        cast(float, ours["eps"]),
        limit_batched_eps=batched.eps,
        events=loaded.stats.events,
        limit={"events": limit.events, "seconds": round(limit.seconds, 3), "topic": PEER_TOPIC},
        limit_batched={
            "events": batched.events,
            "seconds": round(batched.seconds, 3),
            "topics": "clean (batched)",
        },
        peer=peer,
        ours=ours,
        load=_load_doc(loaded),
        settings=_settings_doc(s, opts),
        machine={"cores": os.cpu_count(), "python": sys.version.split()[0], "load_avg": os.getloadavg()},
    )


def _load(s: Settings, opts: PipelineOptions, say: Say) -> _Loaded:
    """Generator events through the ingest edge's pure code into the clean topics, and a prefix one
    event per record on PEER_TOPIC; refuses a load the edge rejected any generator event of."""
    city = load_city(s.generator.city_file)
    # the bench's one reading of the calendar: its load starts at 08:00 today
    now_ms = int(time.time() * 1000)
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
    asyncio.run(ensure_topics(s.kafka.bootstrap, [PEER_TOPIC], s.kafka.partitions))
    stats = LoadStats()
    t0 = time.monotonic()
    batches = clean_batches(raw_events(base, plan), s, city, stats, s.window.window_s * 1000, now_ms=now_ms)
    singles = asyncio.run(
        load_kafka(
            s.kafka.bootstrap,
            batches,
            single_topic=PEER_TOPIC,
            single_events=opts.peer_events or opts.events,
            progress=_ticker(say, "load", opts.events),
        )
    )
    loaded = _Loaded(plan, stats, singles, time.monotonic() - t0)
    say(
        f"[load] {stats.events:,} clean events in {stats.records:,} records, {len(stats.windows)} windows, "
        f"{singles:,} single-event records; {loaded.seconds:.0f} s"
    )
    say(f"[load] {rejected_line(stats)}")
    faults = stats.generator_faults()
    if faults:
        raise CityScreenError(
            f"the ingest edge rejected bench events the generator must never make ({_per_reason(faults)}): "
            "a generator bug, since its events must all pass the edge's validator "
            "(tests/unit/test_generator_in_city.py)"
        )
    return loaded


def _measure_limit(bootstrap: str, loaded: _Loaded, say: Say) -> tuple[_Limit, _Limit]:
    """limit: the events as external producers send them, one JSON event per record (the issue's "plain
    consumer that only decodes the events"); limit batched: the same consumer on the batched records ours
    reads, reported beside it with its own ratio."""
    say("[limit] plain aiokafka consumer, decode only, one event per record ...")
    singles = loaded.singles
    limit = _Limit(
        *asyncio.run(probes.limit_consume(bootstrap, [PEER_TOPIC], singles, _ticker(say, "limit", singles)))
    )
    say(f"[limit] {limit.events:,} events in {limit.seconds:.2f} s: {limit.eps:,.0f} events/s")
    say("[limit] the same on the batched clean topics ...")
    events = loaded.stats.events
    clean_topics = list(CLEAN_TOPICS.values())
    batched = _Limit(
        *asyncio.run(
            probes.limit_consume(bootstrap, clean_topics, events, _ticker(say, "limit-batched", events))
        )
    )
    say(f"[limit] batched: {batched.events:,} events in {batched.seconds:.2f} s: {batched.eps:,.0f} events/s")
    return limit, batched


def _load_doc(loaded: _Loaded) -> dict[str, object]:
    stats, plan = loaded.stats, loaded.plan
    return {
        "seconds": round(loaded.seconds, 1),
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
    }


def _settings_doc(s: Settings, opts: PipelineOptions) -> dict[str, object]:
    return {
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
    }


def _ticker(say: Say, phase: str, total: int, every_s: float = 5.0) -> Callable[[int], None]:
    state = {"n": 0, "at": time.monotonic(), "t0": time.monotonic()}

    def tick(n: int) -> None:
        state["n"] = n if phase != "load" else state["n"] + n
        now = time.monotonic()
        if now - state["at"] >= every_s:
            state["at"] = now
            say(f"[{phase}] {state['n']:,}/{total:,} events, {now - state['t0']:.0f} s")

    return tick


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
