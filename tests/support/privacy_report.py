"""Survival report on a recorded fixture, aggregated by the reference implementation.

Run: .venv/bin/python -m tests.support.privacy_report fixtures/shenzhen-10min.jsonl.gz [--json]
(`cityscreen privacy report` does the same from saved aggregates or a synthetic city.)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from cityscreen.privacy.survival import format_report, survival_report
from cityscreen.settings import Settings
from services.generator.fixtures import read_events
from tests.support.reference_aggregates import reference_window_aggregates


def main(argv: list[str]) -> None:
    path = Path(argv[0]) if argv else Path("fixtures/shenzhen-10min.jsonl.gz")
    aggregates = reference_window_aggregates(read_events(path), Settings())
    persons = sum(
        a.cells[a.base_res][c]["population.persons"].persons
        for a in aggregates
        for c in a.cells.get(a.base_res, {})
        if "population.persons" in a.cells[a.base_res][c]
    )
    print(f"{path}: {len(aggregates)} windows, {persons} person-windows")
    rows = survival_report(aggregates)
    print(json.dumps(rows, indent=2) if "--json" in argv else format_report(rows))


if __name__ == "__main__":
    main(sys.argv[1:])
