"""Placeholder: replaced by the owner of this area."""

import typer


def register(app: typer.Typer) -> None:
    return None
