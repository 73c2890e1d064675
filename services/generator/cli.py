"""`cityscreen generate | record | replay`: synthetic city events into Kafka or a file, and fixtures back.

generate  simulate the city and send raw events to the `city.ingest.*` topics (or --out FILE)
record    write a stream to a JSON-lines fixture: generated events, or consumed from Kafka topics
replay    send a fixture into Kafka at its original pace, N times faster, or as fast as possible
"""

from __future__ import annotations

import asyncio
import math
import sys
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import typer

from cityscreen.city import City, load_city
from cityscreen.errors import CityScreenError
from cityscreen.settings import Settings
from services.generator.columnar.engine import Engine, census
from services.generator.feed import RecordSink, pump_engine
from services.generator.fixtures import DAY_MS, iter_lines, read_events, shift_days_for, shifted, time_range
from services.generator.run import Pace, RunReport, pump
from services.generator.scenarios import parse_scenarios
from services.generator.sinks import FileSink, KafkaSink, kafka_bootstrap

GENERATE_HELP = """Simulate the city's people and send their raw events (SIM location updates, payments,
transit taps) to the Kafka topics city.ingest.sim.v1 / city.ingest.payment.v1 / city.ingest.transit.v1,
as JSON arrays of --batch events per record (or write them to --out FILE as JSON lines).

\b
Time modes (event time is simulated; the daily cycle follows the city's local time):
  --realtime         event time is the wall clock (the default): a --start in the past is
                     sent at once, then events go out as the clock reaches them
  --speed X          X simulated seconds per wall second (--speed 144: a day in 10 minutes)
  --asap             as fast as possible
  --rate EPS         load test: EPS events/s, ramped up over --ramp-s, stamped with the send time
\b
--duration-s is the simulated span for the time modes (0 = a whole day for --speed/--asap, endless
for --realtime) and the wall-clock length of a --rate run (0 = until Ctrl-C).
\b
Scenarios (repeat --scenario; local times, every simulated day):
  stadium[:venue=ID,start=19:30,hours=2.5,share=0.03]   crowd, spending spike, transit surge
  outage[:line=L1,start=07:30,end=10:00]                metro line down, shuttle buses
  tourists[:share=0.2]                                  extra tourists in the merchant clusters
\b
The population is the city's census (its districts' residents) times its operator_share, unless
--persons (or CITY_GENERATOR__PERSONS) sets it. Shenzhen's 17.5 million took 36 s to build, 71 s to
plan a day and 3.3 GB of memory at the peak when measured (docs/generator.md).
The run reports the rate it achieved and warns when it falls behind its schedule or target rate.
Deterministic: the same --city, --persons, --seed, --start and scenarios give the same events."""


# options `generate`, `record` and `replay` share where their meaning and help are the same
ASAP = typer.Option(False, "--asap", help="as fast as possible")
BATCH = typer.Option(None, "--batch", help="events per Kafka record [generator.batch_events]")
PROGRESS = typer.Option(True, "--progress/--no-progress")
YEAR_S = 365 * 86_400.0  # "endless": a span no run reaches


def register(app: typer.Typer) -> None:
    app.command("generate", help=GENERATE_HELP)(generate)
    app.command("record")(record)
    app.command("replay")(replay)


def generate(
    ctx: typer.Context,
    realtime: bool = typer.Option(False, "--realtime", help="one simulated second per wall second"),
    speed: float = typer.Option(0.0, "--speed", help="simulated seconds per wall second (e.g. 144)"),
    asap: bool = ASAP,
    rate: float = typer.Option(0.0, "--rate", help="load test: target events/s (send-time stamps)"),
    ramp_s: float = typer.Option(0.0, "--ramp-s", help="seconds to ramp linearly up to --rate"),
    duration_s: float = typer.Option(0.0, "--duration-s", help="simulated span; with --rate, wall seconds"),
    start: str = typer.Option("now", "--start", help="event time of the start: now | today | ISO 8601"),
    city_file: Path | None = typer.Option(None, "--city", help="city model JSON (docs/city-model.md)"),
    seed: int | None = typer.Option(None, "--seed", help="random seed [settings: generator.seed]"),
    persons: int | None = typer.Option(
        None, "--persons", help="population size [generator.persons; default: the city's census]"
    ),
    scenario: list[str] = typer.Option([], "--scenario", help="NAME[:k=v,...], repeatable"),
    batch: int | None = BATCH,
    out: Path | None = typer.Option(None, "--out", help="write JSON lines to this file instead of Kafka"),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="show a progress bar"),
    warm_s: float = typer.Option(
        0.0, "--warm-s", min=0.0, help="warm start: every person also reports once in the first S seconds"
    ),
) -> None:
    settings: Settings = ctx.obj
    pace, span_s = _pace(realtime, speed, asap, rate, ramp_s, duration_s)
    sim, start_ms = _simulation(settings, city_file, seed, persons, scenario, start)
    sim.warm_ms = round(warm_s * 1000)
    batch_events = batch or settings.generator.batch_events
    sink: RecordSink = (
        FileSink(out)
        if out
        else KafkaSink(kafka_bootstrap(settings), settings.kafka.partitions, batch_events)
    )
    total = rate * (duration_s or 0) if rate else None
    report = _run_engine(sim, start_ms, span_s, sink, pace, progress, batch_events=batch_events, total=total)
    print(report.summary())


def _pace(
    realtime: bool, speed: float, asap: bool, rate: float, ramp_s: float, duration_s: float
) -> tuple[Pace, float]:
    """`generate`'s time mode as a pace, and the simulated span it covers in seconds."""
    if sum([realtime, speed > 0, asap, rate > 0]) > 1:
        raise CityScreenError("choose one of --realtime, --speed X, --asap, --rate EPS")
    if rate > 0:
        return Pace(rate_eps=rate, ramp_s=ramp_s, duration_s=duration_s or None), YEAR_S
    # real time (the default) follows the wall clock: a --start in the past is caught up at once
    pace = Pace(speed=math.inf if asap else (speed or 1.0), anchored=not (asap or speed > 0))
    return pace, duration_s or (YEAR_S if pace.speed == 1.0 else 86_400.0)


def record(
    ctx: typer.Context,
    out: Path = typer.Option(..., "--out", help="fixture file (.jsonl or .jsonl.gz)"),
    from_kafka: bool = typer.Option(False, "--from-kafka", help="consume topics instead of generating"),
    topic: list[str] = typer.Option([], "--topic", help="topics to consume [the city.ingest.* topics]"),
    from_beginning: bool = typer.Option(False, "--from-beginning", help="read topics from the start"),
    max_events: int = typer.Option(0, "--max-events", help="stop after this many events (0 = no limit)"),
    idle_s: float = typer.Option(10.0, "--idle-s", help="Kafka: stop after this long without records"),
    duration_s: float = typer.Option(600.0, "--duration-s", help="generated: simulated span in seconds"),
    start: str = typer.Option("now", "--start", help="generated: start event time (now | today | ISO)"),
    city_file: Path | None = typer.Option(None, "--city", help="generated: city model JSON"),
    seed: int | None = typer.Option(None, "--seed", help="generated: random seed"),
    persons: int | None = typer.Option(None, "--persons", help="generated: population size"),
    scenario: list[str] = typer.Option([], "--scenario", help="generated: NAME[:k=v,...]"),
    progress: bool = PROGRESS,
) -> None:
    """Record a stream to a JSON-lines file: generated events (as fast as possible), or --from-kafka.

    The shipped fixture is regenerated with:
    cityscreen record --out fixtures/shenzhen-10min.jsonl.gz --persons 40000 --seed 42
    --start 2026-11-17T08:00:00+08:00 --duration-s 600
    """
    settings: Settings = ctx.obj
    if from_kafka:
        from services.generator.consume import record_from_kafka

        n = asyncio.run(
            record_from_kafka(
                kafka_bootstrap(settings),
                topic,
                out,
                from_beginning=from_beginning,
                max_events=max_events,
                idle_s=idle_s,
                progress=progress,
            )
        )
        print(f"recorded {n} events to {out}")
        return
    sim, start_ms = _simulation(settings, city_file, seed, persons, scenario, start)
    report = _run_engine(sim, start_ms, duration_s, FileSink(out), Pace(), progress, max_events=max_events)
    print(f"recorded {report.events} events to {out}")


def replay(
    ctx: typer.Context,
    file: Path = typer.Argument(..., help="fixture file (JSON lines, optionally .gz)"),
    speed: float = typer.Option(1.0, "--speed", help="N times faster than recorded (1 = original pace)"),
    asap: bool = ASAP,
    shift_days: str = typer.Option("auto", "--shift-days", help="auto | N: move event times by whole days"),
    batch: int | None = BATCH,
    progress: bool = PROGRESS,
) -> None:
    """Replay a fixture into the city.ingest.* topics.

    Event times are moved by a whole number of days so that they pass the ingest skew check while
    time of day, window alignment and daily pseudonym periods stay aligned: `auto` puts the last
    event within the day before now; `--shift-days 0` keeps the recorded times.
    """
    settings: Settings = ctx.obj
    first, last = time_range(file)
    days = _shift_days(shift_days, last)
    total = sum(1 for _ in iter_lines(file))
    print(f"replaying {total} events from {file}, shifted by {days} days", file=sys.stderr)
    events = (shifted(e, days) for e in read_events(file))
    pace = Pace(speed=math.inf if asap else speed)
    batch_events = batch or settings.generator.batch_events
    sink = KafkaSink(kafka_bootstrap(settings), settings.kafka.partitions, batch_events)
    span = (first + days * DAY_MS, max(1.0, (last - first) / 1000))
    report = _run(events, sink, pace, progress, total=total, span=span)
    print(report.summary())


def _shift_days(shift_days: str, last_ms: int) -> int:
    """`--shift-days`: `auto` (the last event within the day before now) or a whole number."""
    if shift_days == "auto":
        return shift_days_for(last_ms, int(time.time() * 1000))
    try:
        return int(shift_days)
    except ValueError as exc:
        raise CityScreenError(f"--shift-days {shift_days!r}: use auto or a whole number") from exc


def _simulation(
    settings: Settings,
    city_file: Path | None,
    seed: int | None,
    persons: int | None,
    scenario: list[str],
    start: str,
) -> tuple[Engine, int]:
    city = load_city(city_file or settings.generator.city_file)
    scenarios = parse_scenarios(scenario)
    size = persons if persons is not None else settings.generator.persons
    sim = Engine(
        city,
        size if size is not None else census(city),
        seed if seed is not None else settings.generator.seed,
        scenarios,
    )
    return sim, parse_start(start, city)


def parse_start(start: str, city: City) -> int:
    """now | today (the city's local midnight) | an ISO 8601 time (naive = the city's local time)."""
    tz = timezone(timedelta(hours=city.utc_offset_h))
    if start == "now":
        return int(time.time()) * 1000
    if start == "today":
        local = datetime.now(tz).replace(hour=0, minute=0, second=0, microsecond=0)
        return int(local.timestamp()) * 1000
    try:
        when = datetime.fromisoformat(start)
    except ValueError as exc:
        raise CityScreenError(
            f"--start {start!r}: use now, today or ISO 8601 (2026-11-17T08:00+08:00)"
        ) from exc
    return int((when if when.tzinfo else when.replace(tzinfo=tz)).timestamp() * 1000)


def _progress_bar(total: float | None, progress: bool, span: tuple[int, float] | None) -> tuple[Any, Any]:
    from tqdm import tqdm

    bar = tqdm(total=total or None, unit="ev", disable=not progress, file=sys.stderr, smoothing=0.1)
    last = [0]

    def tick(n: int, ts_ms: int) -> None:
        bar.update(n - last[0])
        last[0] = n
        if ts_ms and span:
            done = min(1.0, (ts_ms - span[0]) / 1000 / span[1]) if span[1] < 300 * 86_400 else None
            when = datetime.fromtimestamp(ts_ms / 1000, UTC).strftime("%m-%d %H:%M:%S")
            bar.set_postfix_str(f"event time {when}Z" + (f" ({done:.0%})" if done is not None else ""))

    return bar, tick


def _run(
    events: object, sink: Any, pace: Pace, progress: bool, *,
    total: float | None = None, span: tuple[int, float] | None = None,
) -> RunReport:  # fmt: skip
    """Replay: RawEvent objects one by one (a fixture's pace is its own)."""
    bar, tick = _progress_bar(total, progress, span)
    try:
        return asyncio.run(pump(events, sink, pace, progress=tick))  # type: ignore[arg-type]
    finally:
        bar.close()


def _run_engine(
    engine: Engine, start_ms: int, span_s: float, sink: RecordSink, pace: Pace, progress: bool, *,
    batch_events: int = 500, max_events: int = 0, total: float | None = None,
) -> RunReport:  # fmt: skip
    """Generate and record: the columnar engine's slices, encoded a record at a time."""
    if progress:
        print(f"simulating {engine.world.n:,} persons", file=sys.stderr)
    bar, tick = _progress_bar(total, progress, (start_ms, span_s))
    try:
        return asyncio.run(
            pump_engine(engine, start_ms, span_s, sink, pace, batch_events=batch_events,
                        max_events=max_events, progress=tick)
        )  # fmt: skip
    finally:
        bar.close()
