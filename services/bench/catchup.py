"""`cityscreen bench catchup`: how long the pipeline takes to be current again after an outage.

The outage is simulated by its backlog: `minutes` of events at `rate_eps`, event times ending when the
load ends (producers kept sending while ingest and aggregate were down), written to the raw topics as
producers send them. Then the ingest and aggregate workers start (fresh groups, as after a restart), and
the clock runs from their spawn until the frame of the backlog's last window is published: the frames
are current again. No new events arrive during the catch-up here: with live traffic at the same rate,
the catch-up rate is the pipeline's rate minus the live rate (see docs/capacity.md).
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from pathlib import Path

from cityscreen.city import load_city
from cityscreen.settings import Settings
from services.bench.e2e import load_raw, measure_e2e, raw_load, worker_env
from services.bench.report import rate_eps
from services.bench.stack import bench_stack
from services.bench.workers import Say


@dataclass
class CatchupOptions:
    minutes: float = 10.0
    rate_eps: float = 20_000.0
    target_s: float = 120.0
    base_persons: int = 250_000
    per_record: int = 1
    workers: int = 1
    use_running: bool = False
    seed: int = 42


def run_catchup(settings: Settings, opts: CatchupOptions, say: Say) -> dict[str, object]:
    with bench_stack(settings, "catchup", opts.use_running, say) as s:
        # window.idle_close_s stays the live default: the last window closes on it (services/bench/e2e.py)
        return _run(s, opts, say)


def _run(s: Settings, opts: CatchupOptions, say: Say) -> dict[str, object]:
    city = load_city(s.generator.city_file)
    span_s = int(opts.minutes * 60)
    events = int(span_s * opts.rate_eps)
    start_ms = int(time.time() * 1000) - span_s * 1000  # the outage began `minutes` ago
    raws = raw_load(
        s,
        city,
        events=events,
        base_persons=opts.base_persons,
        span_s=span_s,
        start_ms=start_ms,
        seed=opts.seed,
        say=say,
    )
    say(f"[backlog] {events:,} events ({opts.minutes:g} min at {opts.rate_eps:,.0f}/s) into the raw topics")
    load = asyncio.run(
        load_raw(
            s.kafka.bootstrap,
            raws,
            opts.per_record,
            s.window.window_s * 1000,
            lambda n: say(f"[backlog] {n:,} events"),
        )
    )
    say(f"[backlog] {load.events:,} events in {load.records:,} records; {load.seconds:.0f} s (not timed)")
    logs = s.data_dir / "bench-logs"
    t = measure_e2e(s, worker_env(s), logs, load, opts.workers, say, phase="catchup")
    catchup_s = float(t["from_spawn_s"])  # type: ignore[arg-type]
    verdict = "PASS" if catchup_s <= opts.target_s else "MISS"
    say(f"catchup_s      {catchup_s:>12,.1f}  target <= {opts.target_s:g} s  {verdict}")
    return {
        "catchup_s": round(catchup_s, 3),
        "target_s": opts.target_s,
        "passed": catchup_s <= opts.target_s,
        "backlog": {
            "minutes": opts.minutes,
            "rate_eps": opts.rate_eps,
            "events": load.events,
            "records": load.records,
            "events_per_record": opts.per_record,
            "load_seconds": round(load.seconds, 1),
        },
        "pipeline_eps": round(rate_eps(load.events, catchup_s), 1),
        "run": t,
        "timed": "worker spawn (the restart) -> frame of the backlog's last window in Redis",
        "live_traffic_during_catchup": False,
        "machine": {"cores": os.cpu_count(), "load_avg": os.getloadavg()},
    }


def write_catchup(path: Path, result: dict[str, object], say: Say) -> None:
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    say(f"wrote {path}")
