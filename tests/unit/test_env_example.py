"""`.env.example` lists exactly the settings, each with a comment, and its values are the defaults."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from cityscreen.settings import Settings, to_env
from services.stack.env_example import render

ENV_EXAMPLE = Path(__file__).resolve().parents[2] / ".env.example"
REGENERATE = "regenerate it: .venv/bin/python -m services.stack.env_example > .env.example"
ASSIGNMENT = re.compile(r"^(#\s*)?(CITY_[A-Z0-9_]+)=(.*)$")


def parse_env_example() -> tuple[dict[str, str], set[str], list[str]]:
    """(set variables, variables listed as unset, variables without a comment line just above)."""
    assigned: dict[str, str] = {}
    unset: set[str] = set()
    uncommented: list[str] = []
    previous = ""
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        match = ASSIGNMENT.match(line)
        if match:
            commented, name, value = match.groups()
            if commented:
                unset.add(name)
            else:
                assigned[name] = value
            if not previous.startswith("#") or ASSIGNMENT.match(previous):
                uncommented.append(name)
        previous = line
    return assigned, unset, uncommented


def expected_names() -> set[str]:
    """Every variable `Settings` reads, derived from `to_env` plus the fields whose default is None."""
    names = set(to_env(Settings()))
    for name, value in Settings().model_dump().items():
        if isinstance(value, dict):
            names |= {f"CITY_{name.upper()}__{sub.upper()}" for sub, v in value.items() if v is None}
        elif value is None:
            names.add(f"CITY_{name.upper()}")
    return names


def test_every_setting_is_listed_and_nothing_else() -> None:
    assigned, unset, _ = parse_env_example()
    listed = set(assigned) | unset
    missing, extra = sorted(expected_names() - listed), sorted(listed - expected_names())
    assert (missing, extra) == ([], []), f"missing {missing}, extra {extra}: {REGENERATE}"


def test_every_variable_has_a_comment() -> None:
    assert parse_env_example()[2] == []


def test_the_listed_values_are_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("CITY_")]:
        monkeypatch.delenv(name)
    defaults = Settings().model_dump()
    assigned, _, _ = parse_env_example()
    for name, value in assigned.items():
        monkeypatch.setenv(name, value)
    assert Settings().model_dump() == defaults, REGENERATE


def test_the_file_is_what_the_generator_writes() -> None:
    assert ENV_EXAMPLE.read_text(encoding="utf-8") == render(), REGENERATE
