"""`cityscreen privacy manifest|report`, driven in-process."""

from __future__ import annotations

import json

from cityscreen.settings import Settings
from tests.support.privacy_cli import invoke


def run(*args: str) -> str:
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    return result.output


def test_manifest_prints_the_manifest_in_force() -> None:
    doc = json.loads(run("privacy", "manifest"))
    assert doc["k"] == Settings().privacy.min_persons and doc["privacy_unit"] == "person"


def test_report_prints_survival_per_k_dp_and_resolution() -> None:
    rows = json.loads(run("privacy", "report", "--synthetic", "300", "--windows", "1", "--json", "--k", "10"))
    assert {(r["k"], r["dp"], r["res"]) for r in rows} == {
        (10, dp, res) for dp in (False, True) for res in (8, 7, 6)
    }
    assert all(0.0 <= r["cell_share"] <= 1.0 and 0.0 <= r["person_share"] <= 1.0 for r in rows)
