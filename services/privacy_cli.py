"""`cityscreen privacy ...`: the privacy manifest in force, and how much of the city survives the gate."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import typer

from cityscreen.aggregates import WindowAggregate
from cityscreen.errors import CityScreenError
from cityscreen.privacy import manifest_for
from cityscreen.privacy.survival import format_report, survival_report
from cityscreen.privacy.synthetic import synthetic_windows
from cityscreen.settings import Settings

privacy_app = typer.Typer(help="The release gate: manifest and survival report.", no_args_is_help=True)


@privacy_app.command("manifest")
def manifest(ctx: typer.Context) -> None:
    """Print the privacy manifest the gateway serves (from the current CITY_* settings)."""
    settings: Settings = ctx.obj
    doc = manifest_for(settings)
    typer.echo(json.dumps(doc, indent=2))


def _load_aggregates(path: Path) -> list[WindowAggregate]:
    if not path.exists():
        raise CityScreenError(f"{path} not found: pass a JSON list of window aggregates, or use --synthetic")
    try:
        return msgspec.json.decode(path.read_bytes(), type=list[WindowAggregate])
    except msgspec.DecodeError as exc:
        raise CityScreenError(f"{path}: not a JSON list of window aggregates ({exc})") from exc


def _default_city(settings: Settings, minutes: int, persons: int | None, out: Path | None) -> None:
    from services.city_report import city_report
    from services.up import run_persons

    doc = city_report(
        settings,
        minutes=minutes,
        persons=persons or run_persons(settings),
        say=typer.echo,
    )
    _write(doc, out)


@privacy_app.command("report")
def report(
    ctx: typer.Context,
    aggregates: Path = typer.Option(None, help="JSON list of WindowAggregate (e.g. from a replay)"),
    synthetic: int = typer.Option(0, help="instead: a seeded synthetic city of this many persons"),
    windows: int = typer.Option(2, help="synthetic windows"),
    seed: int = typer.Option(0, help="synthetic seed"),
    k: list[int] = typer.Option([10, 20], help="thresholds to report"),
    as_json: bool = typer.Option(False, "--json", help="print JSON rows"),
    default_city: bool = typer.Option(
        False, "--default-city", help="instead: the `make run` city and settings, at the morning peak"
    ),
    minutes: int = typer.Option(10, min=1, help="--default-city: minutes measured from 08:00 local"),
    persons: int | None = typer.Option(None, min=1, help="--default-city: population (default: as make run)"),
    out: Path | None = typer.Option(None, help="--default-city: also write the JSON here"),
) -> None:
    """Share of cells, persons and breakdown values released, at each k, with and without DP."""
    settings: Settings = ctx.obj
    if default_city:
        _default_city(settings, minutes, persons, out)
        return
    if aggregates is not None:
        aggs = _load_aggregates(aggregates)
    elif synthetic > 0:
        aggs = [w.aggregate for w in synthetic_windows(persons=synthetic, windows=windows, seed=seed)]
    else:
        raise CityScreenError("say what to report on: --aggregates FILE or --synthetic PERSONS")
    rows = survival_report(aggs, ks=tuple(k))
    typer.echo(json.dumps(rows, indent=2) if as_json else format_report(rows))


@privacy_app.command("now-report")
def now_report_command(
    ctx: typer.Context,
    persons: int | None = typer.Option(None, min=1, help="population (default: as make run)"),
    hours: str = typer.Option("8,12,18,22", help="local hours to release at, inside one pseudonym period"),
    out: Path | None = typer.Option(None, help="also write the JSON here"),
) -> None:
    """How close the now layer's noisy people-present values come to the exact ones, at the default
    budget per person-day, on the make-run city (plus the day's noisiest tick up to the last hour)."""
    from services.now_report import now_report
    from services.up import run_persons

    settings: Settings = ctx.obj
    try:
        wanted = sorted({int(h) for h in hours.split(",")})
    except ValueError:
        wanted = []
    if not wanted or not all(0 <= h <= 23 for h in wanted):
        raise CityScreenError(
            f"--hours takes local hours 0 to 23 separated by commas, e.g. 8,12; got {hours!r}"
        )
    doc = now_report(settings, persons=persons or run_persons(settings), hours=wanted, say=typer.echo)
    target = doc["target"]
    typer.echo(
        f"[now] res-{target['res']} median relative error, worst moment: {target['worst_median']:.4f} "
        f"(limit {target['relative_error_limit']}: ratio {target['ratio_to_limit']:.2f}); "
        f"epsilon per person-day {doc['budget']['epsilon_per_person_day']:.3f}"
    )
    _write(doc, out)


def _write(doc: dict[str, object], out: Path | None) -> None:
    text = json.dumps(doc, indent=2)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
    typer.echo(text)


def register(app: typer.Typer) -> None:
    app.add_typer(privacy_app, name="privacy")
