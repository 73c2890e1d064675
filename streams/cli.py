"""Stream-processing subcommands: `cityscreen worker --role ingest|aggregate|now`, and the pipeline bench."""

from __future__ import annotations

from typing import Literal

import typer

from cityscreen.settings import Settings

INGEST_GROUP = "cityscreen-ingest"  # the default groups (bench runs pass their own)


def register(app: typer.Typer) -> None:
    @app.command("worker")
    def worker(
        ctx: typer.Context,
        role: Literal["ingest", "aggregate", "now"] = typer.Option(
            "aggregate",
            help="ingest: validate + pseudonymize raw events; aggregate: bin, window, release; now: the "
            "provisional layer every tick (one process per city)",
        ),
        group: str = typer.Option(
            None,
            help="consumer group / Faust app id [cityscreen-ingest, cityscreen-aggregate]; state per group",
        ),
    ) -> None:
        """Run a Faust worker (until Ctrl-C / SIGTERM)."""
        settings: Settings = ctx.obj
        if role == "ingest":
            from streams.ingest import run_ingest_worker

            run_ingest_worker(settings, app_id=group or INGEST_GROUP)
        elif role == "now":
            from streams.now_agent import run_now_worker

            run_now_worker(settings)
        else:
            from streams.worker import run_aggregate_worker

            run_aggregate_worker(settings, app_id=group or "cityscreen-aggregate")
