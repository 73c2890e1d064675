"""`cityscreen bench generator`: the columnar generator's speed and memory, against a target and a peer.

Runs the generator as fast as possible into a null sink, twice: events only counted (the simulation),
then encoded into Kafka records as `generate` sends them (simulation + wire encoding). The peer is the
old per-person generator (services.generator.simulate) measured in the same run on a population small
enough for it, and the columnar engine is measured at that size too. Day plans are built before the
clock starts and reported apart (build_s, plan_s). Memory is the process's peak RSS (getrusage).
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import resource
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cityscreen.city import City, load_city
from cityscreen.events import RawEvent, encode_many
from services.bench import PEAK_START
from services.generator.columnar.engine import Engine, census
from services.generator.feed import NullSink, pump_engine
from services.generator.run import Pace

TARGET_EPS = 1_000_000.0


@dataclass
class GeneratorBenchOptions:
    persons: int | None = None  # None: the city's census x operator_share
    seconds: float = 20.0  # wall seconds per measured run
    peer_persons: int = 5_000
    start: str = PEAK_START
    seed: int = 42
    batch_events: int = 500
    city_file: Path | None = None


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def current_rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def measure_columnar(
    city: City, persons: int, start_ms: int, opts: GeneratorBenchOptions, say: Callable[[str], None]
) -> dict[str, Any]:
    t = time.perf_counter()
    engine = Engine(city, persons, opts.seed)
    build_s = time.perf_counter() - t
    say(f"[generator] {persons:,} persons built in {build_s:.1f} s (RSS {current_rss_mb():,.0f} MB)")
    t = time.perf_counter()
    day = engine.world.day_of(start_ms)
    plan = engine.plan(day)  # (yesterday's plan is needed only before SPILL_MS: not for a morning start)
    plan_s = time.perf_counter() - t
    say(f"[generator] day plan: {len(plan.t_dep):,} trips, {len(plan.p_ts):,} payments in {plan_s:.1f} s")
    memory = {
        "population_mb": engine.world.pop.nbytes() / 2**20,
        "day_plan_mb": plan.nbytes() / 2**20,
        "rss_after_plan_mb": current_rss_mb(),
    }
    counted, span_ms = 0, 0
    t, cpu = time.perf_counter(), time.process_time()
    for piece in engine.slices(start_ms, 86_400):
        counted += piece.count()
        span_ms = piece.hi_ms - start_ms
        if time.perf_counter() - t >= opts.seconds:
            break
    counted_run = _rates(counted, time.perf_counter() - t, time.process_time() - cpu)
    counted_run["event_time_s"] = span_ms / 1000
    sink = NullSink()
    cpu = time.process_time()
    run = pump_engine(
        engine, start_ms, 86_400, sink, Pace(), batch_events=opts.batch_events, max_wall_s=opts.seconds
    )
    report = asyncio.run(run)
    encoded_run = _rates(report.events, report.wall_s, time.process_time() - cpu)
    encoded_run |= {
        "records": sink.records,
        "bytes": sink.bytes,
        "bytes_per_event": sink.bytes / max(1, report.events),
    }
    return {"persons": persons, "build_s": build_s, "plan_s": plan_s, "counted": counted_run,
            "encoded": encoded_run, "memory": memory}  # fmt: skip


def _rates(events: int, wall_s: float, cpu_s: float) -> dict[str, Any]:
    """Per wall second, and per CPU second of this process (the machine may be shared)."""
    return {"events": events, "wall_s": wall_s, "cpu_s": cpu_s, "events_per_s": events / wall_s,
            "events_per_cpu_s": events / cpu_s if cpu_s > 0 else 0.0}  # fmt: skip


def _old_rate(events: Iterable[RawEvent], seconds: float, batch: int, encode: bool) -> dict[str, Any]:
    """The old path: RawEvent objects one by one, batched per kind and encoded as KafkaSink did."""
    buffers: dict[str, list[RawEvent]] = {}
    n, size = 0, 0
    t, cpu = time.perf_counter(), time.process_time()
    for n, event in enumerate(events, 1):
        if encode:
            buf = buffers.setdefault(str(event.__struct_config__.tag), [])
            buf.append(event)
            if len(buf) >= batch:
                size += len(encode_many(buf))
                buf.clear()
        if n % 1000 == 0 and time.perf_counter() - t >= seconds:
            break
    return _rates(n, time.perf_counter() - t, time.process_time() - cpu) | {"bytes": size}


def measure_peer(city: City, start_ms: int, opts: GeneratorBenchOptions) -> dict[str, Any]:
    from services.generator.simulate import Simulation

    runs: dict[str, Any] = {"persons": opts.peer_persons}
    for mode in ("counted", "encoded"):
        t = time.perf_counter()
        sim = Simulation(city, opts.peer_persons, opts.seed)
        day = (start_ms + sim.offset_ms) // 86_400_000
        sim._day_plans(day - 1), sim._day_plans(day)  # plans first: reported apart, as ours
        runs["build_and_plan_s"] = time.perf_counter() - t
        runs[mode] = _old_rate(
            sim.events(start_ms, 86_400), opts.seconds, opts.batch_events, mode == "encoded"
        )
    return runs


def run_generator_bench(opts: GeneratorBenchOptions, say: Callable[[str], None]) -> dict[str, Any]:
    from services.generator.cli import parse_start

    city = load_city(opts.city_file)
    start_ms = parse_start(opts.start, city)
    persons = opts.persons or census(city)
    ours = measure_columnar(city, persons, start_ms, opts, say)
    peak_mb = peak_rss_mb()  # before the smaller runs, which cannot raise it
    say(f"[generator] ours: {ours['counted']['events_per_s']:,.0f} events/s counted, "
        f"{ours['encoded']['events_per_s']:,.0f} events/s encoded; peak RSS {peak_mb:,.0f} MB")  # fmt: skip
    small = measure_columnar(city, opts.peer_persons, start_ms, opts, say)
    say(f"[generator] peer (old generator, {opts.peer_persons:,} persons) ...")
    peer = measure_peer(city, start_ms, opts)
    ratios: dict[str, float] = {}
    for mode in ("counted", "encoded"):
        rate, peer_rate = ours[mode]["events_per_s"], peer[mode]["events_per_s"]
        ratios[f"{mode}_vs_target"] = rate / TARGET_EPS
        ratios[f"{mode}_vs_peer"] = rate / peer_rate
        ratios[f"{mode}_same_size_vs_peer"] = small[mode]["events_per_s"] / peer_rate
        ratios[f"{mode}_per_cpu_s_vs_target"] = ours[mode]["events_per_cpu_s"] / TARGET_EPS
    return {
        "target_events_per_s": TARGET_EPS, "ours": ours, "ours_at_peer_size": small, "peer": peer,
        "ratios": ratios, "peak_rss_mb": peak_mb,
        "options": {**asdict(opts), "city_file": str(opts.city_file)},
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0], "numpy": np.__version__,
                    "platform": platform.platform()},
    }  # fmt: skip


def write_generator_result(out: Path, result: dict[str, Any], say: Callable[[str], None]) -> None:
    ours, peer, r = result["ours"], result["peer"], result["ratios"]
    for mode in ("counted", "encoded"):
        run = ours[mode]
        say(
            f"{mode:>8}: ours {run['events_per_s']:>11,.0f} events/s "
            f"({run['events_per_cpu_s']:,.0f} per CPU s; {ours['persons']:,} persons) | "
            f"target 1,000,000: x{r[mode + '_vs_target']:.2f} | "
            f"peer {peer[mode]['events_per_s']:,.0f} ({peer['persons']:,} persons): "
            f"x{r[mode + '_vs_peer']:.1f} (same size: x{r[mode + '_same_size_vs_peer']:.1f})"
        )
    say(
        f"  peak RSS {result['peak_rss_mb']:,.0f} MB; build {ours['build_s']:.1f} s, "
        f"day plan {ours['plan_s']:.1f} s"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    say(f"wrote {out}")
