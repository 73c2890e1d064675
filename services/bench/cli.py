"""`cityscreen bench pipeline|generator|live|soak`: throughput, the live-mode latency run, the soak."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from cityscreen.settings import Settings
from services.bench import PEAK_START

if TYPE_CHECKING:
    from services.bench.live import LiveOptions

bench_app = typer.Typer(
    help="Benchmarks (commands, not tests): they print ratios and write JSON.", no_args_is_help=True
)

USE_RUNNING = typer.Option(False, "--use-running", help="the running stack, not a fresh one")
LoadRun = Callable[[Settings, "LiveOptions", Path], None]  # runs `live` or `soak` and writes its JSON


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _out(default: str) -> Any:
    return typer.Option(Path(default), "--out", help="result JSON")


def register(app: typer.Typer) -> None:
    app.add_typer(bench_app, name="bench")


@bench_app.command("pipeline")
def pipeline(
    ctx: typer.Context,
    events: int = typer.Option(2_000_000, "--events", help="events loaded and aggregated"),
    out: Path = _out("artifacts/bench-pipeline.json"),
    base_persons: int = typer.Option(250_000, "--base-persons", help="simulated persons (replicated)"),
    span_s: int = typer.Option(300, "--span-s", help="event-time span of the load"),
    peer_events: int = typer.Option(
        0, "--peer-events", help="events also written one per record for limit and peer (0: all)"
    ),
    peer_seconds: float = typer.Option(45.0, "--peer-seconds", help="longest peer measurement"),
    workers: int = typer.Option(1, "--workers", help="aggregate workers in one group (1 or 2)"),
    use_running: bool = USE_RUNNING,
    idle_close_s: float = typer.Option(
        1.0, "--idle-close-s", help="window.idle_close_s of the workers: the last window closes on it"
    ),
    end_to_end: bool = typer.Option(
        False, "--end-to-end", help="also raw JSON through the real ingest edge: e2e_eps, ingest_eps"
    ),
    raw_per_record: int = typer.Option(1, "--raw-per-record", help="--end-to-end: events per raw record"),
) -> None:
    """Load N generator events into Kafka, then measure limit, peer and ours on them; write JSON."""
    from services.bench.pipeline import PipelineOptions, run_pipeline, write_result

    opts = PipelineOptions(
        events=events, base_persons=base_persons, span_s=span_s, peer_events=peer_events,
        peer_seconds=peer_seconds, workers=workers, use_running=use_running, idle_close_s=idle_close_s,
        end_to_end=end_to_end, raw_per_record=raw_per_record,
    )  # fmt: skip
    write_result(out, run_pipeline(ctx.obj, opts, _say), _say)


@bench_app.command("catchup")
def catchup(
    ctx: typer.Context,
    minutes: float = typer.Option(10.0, "--minutes", help="outage length: backlog of this many minutes"),
    rate: float = typer.Option(20_000, "--rate", help="events per second the producers sent meanwhile"),
    target_s: float = typer.Option(120.0, "--target-s", help="catch-up target in seconds"),
    out: Path = _out("artifacts/bench-catchup.json"),
    use_running: bool = USE_RUNNING,
) -> None:
    """A backlog of N minutes in the raw topics, then ingest and aggregate restart: time until current."""
    from services.bench.catchup import CatchupOptions, run_catchup, write_catchup

    opts = CatchupOptions(minutes=minutes, rate_eps=rate, target_s=target_s, use_running=use_running)
    write_catchup(out, run_catchup(ctx.obj, opts, _say), _say)


@bench_app.command("generator")
def generator(
    persons: int | None = typer.Option(
        None, "--persons", help="population [the city's census x operator_share]"
    ),
    seconds: float = typer.Option(20.0, "--seconds", help="wall seconds of each measured run"),
    out: Path = _out("artifacts/bench-generator.json"),
    peer_persons: int = typer.Option(5_000, "--peer-persons", help="population of the old generator (peer)"),
    start: str = typer.Option(PEAK_START, "--start", help="simulated start (ISO 8601)"),
    city_file: Path | None = typer.Option(None, "--city", help="city model JSON"),
) -> None:
    """The generator --asap into a null sink: events/s counted and encoded, against 1M/s and the old
    generator (peer); build time, day-plan time and peak RSS; write JSON."""
    from services.bench.generator import GeneratorBenchOptions, run_generator_bench, write_generator_result

    opts = GeneratorBenchOptions(
        persons=persons, seconds=seconds, peer_persons=peer_persons, start=start, city_file=city_file
    )
    write_generator_result(out, run_generator_bench(opts, _say), _say)


def _load_command(
    name: str, length_option: Any, length_unit_s: int, sample_option: Any
) -> Callable[[LoadRun], LoadRun]:
    """Registers `bench NAME` with the options `live` and `soak` share, declared once; each brings its own
    length option (in units of `length_unit_s` seconds) and sampling option, and writes its own JSON."""

    def register_run(run: LoadRun) -> LoadRun:
        def command(
            ctx: typer.Context,
            rate: float = typer.Option(20_000, "--rate", help="generator events per second (wall clock)"),
            length: float = length_option,
            out: Path = _out(f"artifacts/bench-{name}.json"),
            sample_s: float = sample_option,
            persons: int | None = typer.Option(
                None, "--persons", help="generator population [generator.persons]"
            ),
            use_running: bool = USE_RUNNING,
            start: str = typer.Option(
                PEAK_START,
                "--start",
                help="what the generator simulates (now | today | ISO 8601); "
                "the send time stamps the events, the hour sets their mix of kinds",
            ),
        ) -> None:
            from services.bench.live import LiveOptions

            seconds = length * length_unit_s
            opts = LiveOptions(rate_eps=rate, seconds=seconds, sample_s=sample_s, persons=persons,
                               use_running=use_running, start=start)  # fmt: skip
            run(ctx.obj, opts, out)

        command.__doc__ = run.__doc__
        bench_app.command(name)(command)
        return run

    return register_run


@_load_command("live", typer.Option(300, "--seconds", help="how long the generator runs"), 1,
               typer.Option(5.0, "--sample-s", help="seconds between consumer-lag samples"))  # fmt: skip
def live(settings: Settings, opts: LiveOptions, out: Path) -> None:
    """Generator at a fixed rate in real time through ingest and aggregate: delay and consumer lag."""
    from services.bench.live import run_live, write_live

    write_live(out, run_live(settings, opts, _say), _say)


@_load_command("soak", typer.Option(30, "--minutes", help="how long the generator runs"), 60,
               typer.Option(10.0, "--sample-s", help="seconds between RSS and lag samples"))  # fmt: skip
def soak(settings: Settings, opts: LiveOptions, out: Path) -> None:
    """`bench live` held for minutes: RSS of every process and consumer lag over time with their
    slopes, and events in against events out; write JSON."""
    from services.bench.soak import run_soak, write_soak

    write_soak(out, run_soak(settings, opts, _say), _say)
