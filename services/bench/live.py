"""`cityscreen bench live`: the generator at a fixed rate in real time through the real ingest and
aggregate workers; delay from event time to frame published, and consumer lag over time.

Definitions (also written into the JSON):
- event delay: published_ms - ts_ms per event. The rate-mode generator stamps each event with its send
  time at a fixed rate, so a window's events are spread evenly over the part of the window the run
  covered; every window contributes one value per 10 ms of that part (i.e. per event, weighted by its
  event count), and p50/p99 are taken over all of them.
- window delay: published_ms - window end (window_start + window_s), per window.
- provisional delay (the now layer): per event, the published_ms of the first now frame whose tick holds
  the event (tick_ms > ts_ms) minus ts_ms, events spread evenly as above; the bench polls the newest now
  frame every 0.25 s, so a tick overwritten before it was seen counts its events at the next one seen
  (an overestimate, never an underestimate).
- final delay: published_ms - window end, per base window (the window delay).
- lag: end offset - committed offset, summed over the group's input topics, sampled every --sample-s.
  Flat = over the second half of the run it grows by less than 5% of the rate records are written to
  the group's input topics, both in records/s (see report.lag_is_flat).
- cpu_s: CPU seconds (user + system) each process used, a worker's gate processes in its figure, as
  last read at a lag sample (how busy the two cores were).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis as redis_sync

from cityscreen.aggregate.rows import window_of
from cityscreen.events import CLEAN_TOPICS, INGEST_TOPICS
from cityscreen.privacy import manifest_for
from cityscreen.settings import Settings, to_env
from services.bench import PEAK_START, probes
from services.bench.cpu import cpu_seconds
from services.bench.report import event_delays_ms, lag_is_flat, percentile, second_half, slope_per_s
from services.bench.stack import bench_stack
from services.bench.workers import Say, alive
from services.stack.procs import ManagedProcess, spawn

INGEST_GROUP = "cityscreen-ingest"
AGGREGATE_GROUP = "cityscreen-aggregate"
PROVISIONAL_P99_LIMIT_S = 5.0  # issue 15's targets on this 2-core machine
EPSILON_PER_PERSON_DAY_LIMIT = 3.0
SAMPLE_MS = 10  # one delay value per 10 ms of a window's covered event time
CLI = [sys.executable, "-m", "services.cli"]

# Called at every lag sample with the seconds since the start and the run's processes by role, so a
# longer run (`bench soak`) can observe them too without a second loop.
OnSample = Callable[[float, dict[str, ManagedProcess]], None]


@dataclass
class LiveOptions:
    rate_eps: float = 20_000
    seconds: float = 300
    sample_s: float = 5.0
    persons: int | None = None
    use_running: bool = False
    start: str = PEAK_START  # what the generator simulates; it stamps send time


def run_live(settings: Settings, opts: LiveOptions, say: Say) -> dict[str, object]:
    with bench_stack(settings, "live", opts.use_running, say) as s:
        return run_on_stack(s, opts, say)


def _per_group() -> dict[str, list[tuple[float, float]]]:
    return {INGEST_GROUP: [], AGGREGATE_GROUP: []}


@dataclass
class Seen:
    """What a live run observed, filled in as it runs."""

    first_ms: int | None = None  # wall clock when the first event reached ingest
    end_ms: int | None = None  # wall clock when the generator was seen done
    published: dict[int, int] = field(default_factory=dict)  # window start -> published_ms
    now_ticks: dict[int, int] = field(default_factory=dict)  # now frame's tick_ms -> its published_ms
    # (seconds since the start, records) per group while the load runs: lag, and the input end offsets
    lags: dict[str, list[tuple[float, float]]] = field(default_factory=_per_group)
    ends: dict[str, list[tuple[float, float]]] = field(default_factory=_per_group)
    cpu_s: dict[str, float] = field(default_factory=dict)  # CPU seconds per process (children in), so far

    def load_published(self, window_ms: int) -> bool:
        """The load came and ended, and the window of its last event is published."""
        if self.end_ms is None or self.first_ms is None:
            return False
        return window_of(self.end_ms - 1, window_ms) in self.published


def run_on_stack(
    s: Settings, opts: LiveOptions, say: Say, on_sample: OnSample | None = None
) -> dict[str, object]:
    env = {**os.environ, **to_env(s)}
    logs = s.data_dir / "bench-logs"
    r = redis_sync.Redis.from_url(s.redis.url)
    known = set(probes.published_windows(r, max(s.window.resolutions)))  # windows from before this run
    workers = {
        "ingest": spawn("live-ingest", [*CLI, "worker", "--role", "ingest"], log_dir=logs, env=env),
        "aggregate": spawn(
            "live-aggregate",
            [*CLI, "worker", "--role", "aggregate", "--group", AGGREGATE_GROUP],
            log_dir=logs,
            env=env,
        ),
    }
    if s.now.enabled:
        workers["now"] = spawn("live-now", [*CLI, "worker", "--role", "now"], log_dir=logs, env=env)
    gen = None
    try:
        _await_groups(s.kafka.bootstrap, workers["ingest"])
        say(f"[live] workers ready; generator at {opts.rate_eps:,.0f} events/s for {opts.seconds:.0f} s ...")
        gen = spawn("live-generator", _generator_argv(opts), log_dir=logs, env=env)
        seen = _watch(s, opts, r, known, {**workers, "generator": gen}, say, on_sample)
        stats = probes.stats(r)
        gen_line = gen.tail(1).strip()
    finally:
        for p in [gen, *workers.values()]:
            if p is not None:
                p.stop()
    return live_result(opts, s, seen, stats, gen_line)


def _await_groups(bootstrap: str, ingest: ManagedProcess) -> None:
    for group in (INGEST_GROUP, AGGREGATE_GROUP):

        def joined(g: str = group) -> bool:
            return asyncio.run(probes.group_members(bootstrap, g))[0] == "Stable"

        ingest.wait_ready(joined, timeout_s=120, what=f"joined ({group})")


def _generator_argv(opts: LiveOptions) -> list[str]:
    argv = [
        *CLI,
        "generate",
        "--rate",
        str(opts.rate_eps),
        "--duration-s",
        str(opts.seconds),
        "--no-progress",
        "--start",
        opts.start,
    ]
    return argv + (["--persons", str(opts.persons)] if opts.persons else [])


def _watch(
    s: Settings, opts: LiveOptions, r: redis_sync.Redis, known: set[int], procs: dict[str, ManagedProcess],
    say: Say, on_sample: OnSample | None,
) -> Seen:  # fmt: skip
    """Until the window of the generator's last event is published (or the deadline): when events
    arrive and stop, each new window's published_ms, and the lag every --sample-s."""
    base_res, window_ms = max(s.window.resolutions), s.window.window_s * 1000
    seen, gen = Seen(), procs["generator"]
    t0, next_sample = time.monotonic(), time.monotonic()
    deadline = t0 + opts.seconds + 180 + (window_ms + s.window.grace_s * 1000) / 1000
    while time.monotonic() < deadline:
        alive(*(p for name, p in procs.items() if name != "generator"))
        now_ms = int(time.time() * 1000)
        if seen.first_ms is None and probes.stats(r).get("ingest.accepted", 0) > 0:
            seen.first_ms = now_ms  # the first event reached ingest (stamped a moment before)
        if seen.end_ms is None and gen.returncode is not None:
            seen.end_ms = now_ms
            say(f"[live] generator done: {gen.tail(1).strip()}")
        for start in probes.published_windows(r, base_res):
            if start not in known and start not in seen.published:
                p_ms = probes.published_ms(r, base_res, start)
                if p_ms is not None:
                    seen.published[start] = p_ms
        tick = probes.now_tick(r, min(s.window.resolutions)) if "now" in procs else None
        if tick is not None and tick[0] not in seen.now_ticks:
            seen.now_ticks[tick[0]] = tick[1]
        if time.monotonic() >= next_sample:
            next_sample += opts.sample_s
            t_s = time.monotonic() - t0
            _sample_lag(s.kafka.bootstrap, seen, t_s, say)
            used = cpu_seconds({name: p.pid for name, p in procs.items()})
            seen.cpu_s.update({name: round(seconds, 1) for name, seconds in used.items()})
            if on_sample is not None:
                on_sample(t_s, procs)
        if seen.load_published(window_ms):
            break
        time.sleep(0.25)
    return seen


def _sample_lag(bootstrap: str, seen: Seen, t_s: float, say: Say) -> None:
    ingest, ingest_end = asyncio.run(probes.group_lag(bootstrap, INGEST_GROUP, list(INGEST_TOPICS.values())))
    agg, agg_end = asyncio.run(probes.group_lag(bootstrap, AGGREGATE_GROUP, list(CLEAN_TOPICS.values())))
    if seen.end_ms is None:  # lag flatness is about the time the load runs
        for group, lag, end in ((INGEST_GROUP, ingest, ingest_end), (AGGREGATE_GROUP, agg, agg_end)):
            seen.lags[group].append((t_s, lag))
            seen.ends[group].append((t_s, end))
    say(
        f"[live] {t_s:5.0f} s  lag ingest {ingest:,} records, aggregate {agg:,} records, "
        f"{len(seen.published)} windows published"
    )


def live_result(
    opts: LiveOptions, s: Settings, seen: Seen, stats: dict[str, int], gen_line: str
) -> dict[str, object]:
    delays, windows = _delays(seen, s.window.window_s * 1000)
    after_end = [float(x["delay_after_end_ms"]) for x in windows]
    early = provisional_delays_ms(seen)
    manifest = manifest_for(s)
    return {
        "provisional_p50_s": _s(percentile(early, 50)),
        "provisional_p99_s": _s(percentile(early, 99)),
        "final_p99_s": _s(percentile(after_end, 99)),
        "epsilon_per_person_day": manifest.get("epsilon_per_person_day"),
        "limits": {
            "provisional_p99_s": PROVISIONAL_P99_LIMIT_S,
            "final_p99_s": s.window.grace_s + 5.0,
            "epsilon_per_person_day": EPSILON_PER_PERSON_DAY_LIMIT,
        },
        "now_ticks_seen": len(seen.now_ticks),
        "now_ticks": sorted(seen.now_ticks.items()),  # [tick_ms, published_ms] of each now frame seen
        "rate_eps": opts.rate_eps,
        "seconds": opts.seconds,
        "simulated_start": opts.start,
        "generator": gen_line,
        "cpu_s": seen.cpu_s,
        "event_delay_ms": {
            "p50": percentile(delays, 50),
            "p99": percentile(delays, 99),
            "definition": "published_ms - ts_ms per event, events spread evenly over the "
            "covered part of each window (fixed-rate generator stamps send time)",
        },
        "window_delay_ms": {
            "p50": percentile(after_end, 50),
            "p99": percentile(after_end, 99),
            "max": max(after_end) if after_end else None,
            "definition": "published_ms - (window_start_ms + window_s*1000) per window",
        },
        "lag": _lag_doc(seen),
        "lag_definition": "end offset - committed offset summed over the group's input topics (records; "
        "ingest records hold generator.batch_events events, clean records up to 1000)",
        "windows": windows,
        "stats": stats,
        "delay_parts": delay_parts(stats),
        "settings": {
            "window_s": s.window.window_s,
            "grace_s": s.window.grace_s,
            "idle_close_s": s.window.idle_close_s,
            "speculate_after_s": s.window.speculate_after_s,
            "partitions": s.kafka.partitions,
            "stack": "running" if opts.use_running else "fresh",
        },
        "machine": {"cores": os.cpu_count()},
    }


def delay_parts(stats: dict[str, int]) -> dict[str, float | int | None]:
    """Where a final frame's delay goes, on average per window (docs/operations.md): until each close was
    delivered, until the partials were all in, the gate in the release path (a window taken ahead waits
    for nothing) and ahead of it, the store; and how many windows were gated ahead (streams/gate_ahead.py).
    The last windows of a run close idle, after the generator stopped, and are in the averages."""

    def avg_s(total: str, count: str) -> float | None:
        n = stats.get(count, 0)
        return round(stats.get(total, 0) / n / 1000, 2) if n else None

    return {
        "closed_after_end_avg_s": avg_s("closed_after_end_ms", "closes_delivered"),
        "complete_after_end_avg_s": avg_s("complete_after_end_ms", "windows_complete"),
        "gate_avg_s": avg_s("gate_ms", "windows_gated"),
        "gate_ahead_avg_s": avg_s("gate_ahead_ms", "windows_gated_ahead"),
        "store_avg_s": avg_s("store_ms", "windows_published"),
        "windows_gated_ahead": stats.get("windows_gated_ahead", 0),
        "windows_taken_ahead": stats.get("windows_taken_ahead", 0),
        "windows_missed_ahead": stats.get("windows_missed_ahead", 0),
    }


def _delays(seen: Seen, window_ms: int) -> tuple[list[float], list[dict[str, int]]]:
    """Event delays (per SAMPLE_MS of each window's covered part) and each window's publication."""
    delays: list[float] = []
    windows = []
    for w, p_ms in sorted(seen.published.items()):
        lo, hi = max(w, seen.first_ms or w), min(w + window_ms, seen.end_ms or w + window_ms)
        if hi > lo:
            delays.extend(event_delays_ms(lo, hi, p_ms, max(1, (hi - lo) // SAMPLE_MS)))
        windows.append(
            {"window_start_ms": w, "published_ms": p_ms, "delay_after_end_ms": p_ms - (w + window_ms)}
        )
    return delays, windows


def provisional_delays_ms(seen: Seen) -> list[float]:
    """Per SAMPLE_MS of event time the load covered: the first now frame seen whose tick holds it,
    published_ms minus the event time (see the module's definitions)."""
    if seen.first_ms is None:
        return []
    out: list[float] = []
    before = seen.first_ms
    end = seen.end_ms if seen.end_ms is not None else max(seen.now_ticks, default=before)
    for tick_ms, p_ms in sorted(seen.now_ticks.items()):
        lo, hi = before, min(tick_ms, end)
        if hi > lo:
            out.extend(event_delays_ms(lo, hi, p_ms, max(1, (hi - lo) // SAMPLE_MS)))
        before = max(before, tick_ms)
    return out


def _s(ms: float | None) -> float | None:
    return None if ms is None else round(ms / 1000, 2)


def _lag_doc(seen: Seen) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for group, samples in seen.lags.items():
        half = second_half(samples)
        doc[group] = {
            "flat": lag_is_flat(samples, seen.ends[group]),
            "slope_records_per_s_second_half": round(slope_per_s(half), 1),
            "input_records_per_s_second_half": round(slope_per_s(second_half(seen.ends[group])), 1),
            "max_second_half": max(v for _, v in half) if half else None,
            "samples": [[round(t, 1), v] for t, v in samples],
        }
    return doc


def write_live(path: Path, result: dict[str, object], say: Say) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    ev, win, lag = result["event_delay_ms"], result["window_delay_ms"], result["lag"]
    limits: Any = result["limits"]
    for key in ("provisional_p50_s", "provisional_p99_s", "final_p99_s", "epsilon_per_person_day"):
        value, limit = result[key], limits.get(key)
        shown = isinstance(value, float) and limit
        say(f"{key}: {value}" + (f"  ({value / limit:.2f} of the limit {limit:g})" if shown else ""))
    # the peer, measured in the same run: the final pane's delay from event time to frame
    early, final = result["provisional_p99_s"], ev["p99"]  # type: ignore[index]
    if isinstance(early, float) and isinstance(final, float) and final > 0:
        say(f"provisional p99 / final event delay p99 (peer, same run): {early * 1000 / final:.3f}")
    say(f"event delay (published - event time): p50 {_ms(ev['p50'])}  p99 {_ms(ev['p99'])}")  # type: ignore[index]
    say(f"window delay (published - window end): p50 {_ms(win['p50'])}  p99 {_ms(win['p99'])}")  # type: ignore[index]
    g: Any = result["delay_parts"]
    say(
        f"per window: closed {g['closed_after_end_avg_s']} s and complete {g['complete_after_end_avg_s']} s "
        f"after its end, gate {g['gate_avg_s']} s (ahead {g['gate_ahead_avg_s']} s), "
        f"store {g['store_avg_s']} s; "
        f"windows gated ahead {g['windows_gated_ahead']}, taken {g['windows_taken_ahead']}, "
        f"missed {g['windows_missed_ahead']}"
    )
    for group, doc in lag.items():  # type: ignore[attr-defined]
        say(
            f"lag {group}: flat={doc['flat']} max(2nd half)={doc['max_second_half']} "
            f"slope={doc['slope_records_per_s_second_half']}/s"
        )
    say(f"wrote {path}")


def _ms(x: object) -> str:
    return f"{x / 1000:.1f} s" if isinstance(x, int | float) else "n/a"
