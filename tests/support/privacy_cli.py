"""`cityscreen privacy ...` driven in-process, with the settings the environment gives."""

from __future__ import annotations

import typer
from typer.testing import CliRunner, Result

from cityscreen.settings import Settings
from services.privacy_cli import register


def invoke(*args: str) -> Result:
    app = typer.Typer()

    @app.callback()
    def _root(ctx: typer.Context) -> None:
        ctx.obj = Settings()

    register(app)
    return CliRunner().invoke(app, list(args))
