"""`cityscreen`: the command line, and the one place where services and streams meet.

Each area registers its own subcommands (`register(app)`); this module builds the settings once and
turns `CityScreenError` into a one-line message with its fix instead of a traceback.
"""

from __future__ import annotations

import importlib
import sys

import typer
from pydantic import ValidationError

from cityscreen.errors import CityScreenError
from cityscreen.settings import Settings

COMMAND_MODULES = (
    "services.stack.cli",
    "services.generator.cli",
    "streams.cli",
    "services.gateway.cli",
    "services.up",
    "services.privacy_cli",
    "services.bench.cli",
)

app = typer.Typer(
    name="cityscreen",
    help="CityScreen: a privacy-first real-time city screen (Kafka -> Faust -> release gate -> live map).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root(ctx: typer.Context) -> None:
    """Settings come from CITY_* environment variables (see .env.example)."""
    try:
        ctx.obj = Settings()
    except ValidationError as exc:
        raise CityScreenError(f"invalid settings: {exc}") from exc


for _module in COMMAND_MODULES:
    importlib.import_module(_module).register(app)


def main() -> None:
    try:
        app()
    except CityScreenError as exc:
        print(f"cityscreen: error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
