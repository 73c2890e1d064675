"""`cityscreen bench soak`: `bench live` held for a long time, watching for what only time shows: resident
memory of every process (Kafka, Redis, both workers and their children, the generator, the gateway)
and consumer lag sampled over the run, their slopes, and the count of events in against events out.
The arithmetic is in `services.bench.soak_report`; this module only runs and observes."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

import psutil
import redis as redis_sync

from cityscreen.events import CLEAN_TOPICS
from cityscreen.settings import Settings, to_env
from services.bench import probes
from services.bench.live import LiveOptions, run_on_stack
from services.bench.soak_report import event_balance, ingest_dead_lettered, sent_events, soak_summary
from services.bench.stack import bench_stack
from services.bench.workers import Say
from services.stack.ports import free_port
from services.stack.procs import ManagedProcess, spawn
from services.stack.state import read_state


class RssSampler:
    """Resident memory per named process, and of its descendants summed (the gate runs in a child)."""

    def __init__(self, fixed: dict[str, int], redis_url: str) -> None:
        self.fixed = fixed  # processes that outlive the run's own: the stack's, the gateway
        self.redis = redis_sync.Redis.from_url(redis_url)
        self.rss: defaultdict[str, list[tuple[float, float]]] = defaultdict(list)
        self.load: list[tuple[float, float]] = []
        self.load_start_s: float | None = None  # the first sample after events reached ingest

    def sample(self, t_s: float, procs: dict[str, ManagedProcess]) -> None:
        # the generator builds its population first (minutes at a large one): that is no soak yet
        if self.load_start_s is None and probes.stats(self.redis).get("ingest.accepted", 0) > 0:
            self.load_start_s = t_s
        pids = {**self.fixed, **{name: p.pid for name, p in procs.items() if p.is_alive()}}
        for name, pid in pids.items():
            try:
                proc = psutil.Process(pid)
                self.rss[name].append((t_s, float(proc.memory_info().rss)))
                children = proc.children(recursive=True)
                if children:
                    total = sum(c.memory_info().rss for c in children)
                    self.rss[f"{name}.children"].append((t_s, float(total)))
            except psutil.Error:
                continue  # it ended between listing and reading: the next sample says so
        self.load.append((t_s, os.getloadavg()[0]))


def run_soak(settings: Settings, opts: LiveOptions, say: Say) -> dict[str, object]:
    with bench_stack(settings, "soak", opts.use_running, say) as s:
        s = s.model_copy(update={"gateway": s.gateway.model_copy(update={"port": free_port()})})
        env = {**os.environ, **to_env(s)}
        gateway = spawn("soak-gateway", [sys.executable, "-m", "services.cli", "api"],
                        log_dir=s.data_dir / "bench-logs", env=env)  # fmt: skip
        try:
            return _observe(s, opts, gateway, say)
        finally:
            gateway.stop()


def _observe(s: Settings, opts: LiveOptions, gateway: ManagedProcess, say: Say) -> dict[str, object]:
    state = read_state(s.data_dir.resolve())
    sampler = RssSampler({**(state.pids() if state else {}), "gateway": gateway.pid}, s.redis.url)
    t0 = time.monotonic()
    live = run_on_stack(s, opts, say, on_sample=sampler.sample)
    say(f"[soak] load done after {time.monotonic() - t0:.0f} s; counting the events on the clean topics ...")
    stats: dict[str, int] = live["stats"]  # type: ignore[assignment]
    clean_events, _ = asyncio.run(
        probes.limit_consume(
            s.kafka.bootstrap, list(CLEAN_TOPICS.values()), stats.get("ingest.accepted", 0), lambda n: None
        )
    )
    lags = {group: [(t, v) for t, v in doc["samples"]] for group, doc in live["lag"].items()}  # type: ignore[attr-defined]
    summary = soak_summary(
        sampler.rss,
        lags,
        event_balance(
            sent_events(str(live["generator"])),
            clean_events,
            ingest_dead_lettered(stats),
            stats.get("late_events", 0),
        ),
        sampler.load,
        since_s=sampler.load_start_s or 0.0,
    )
    return {"command": "bench soak", "rate_eps": opts.rate_eps, "minutes": opts.seconds / 60, **summary,
            "live": live}  # fmt: skip


def write_soak(path: Path, result: dict[str, object], say: Say) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    for name, slope in result["rss_slope_mb_per_h"].items():  # type: ignore[attr-defined]
        say(f"rss {name:<20} {slope:+9.2f} MB/h")
    say(f"lag slope (records/h): {result['lag_slope']}")
    events = result["events"]
    say(f"events in {events['in']} out {events['out']} equal={events['equal']}")  # type: ignore[index]
    say(f"load average (1 min): {result['load_average_1m']}")
    say(f"wrote {path}")
