"""`cityscreen privacy now-report`: a small make-run city, simulated from the period's start."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h3
import numpy as np
import pytest

from cityscreen.city import load_city
from cityscreen.errors import CityScreenError
from cityscreen.settings import Settings
from services.city_report import PEAK_DAY, local_ms
from services.now_report import Tracks, noisiest_tick_ms, now_report
from tests.support.privacy_cli import invoke


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return now_report(Settings(), persons=3_000, hours=[6, 7], say=lambda _: None)


def test_the_report_states_the_budget_and_each_moment_per_resolution(doc: dict[str, Any]) -> None:
    assert doc["budget"]["epsilon_per_person_day"] <= 3.0
    assert [m["local_time"] for m in doc["moments"]][-1] == "07:00"
    assert len(doc["moments"]) == 3  # 06:00, 07:00 and the noisiest tick before 07:00
    for moment in doc["moments"]:
        assert set(moment["by_res"]) == set(moment["running_by_res"]) == {8, 7, 6}
        # anchored on the freshest final frame out by then: its window ended over grace + 5 s before
        assert 0 < moment["tick"] - moment["final_tick"] <= (60 + 30 + 5) // 2
        assert 0.5 * 3_000 < moment["persons_present"] <= 3_000  # most phones reported since 04:00
        for row in moment["by_res"].values():
            assert 0.0 <= row["shown_person_share"] <= 1.0
    noisiest = max(doc["moments"], key=lambda m: m["nodes_in_cover"])
    assert noisiest["local_time"] not in ("06:00", "07:00")
    assert doc["target"]["ratio_to_limit"] == pytest.approx(doc["target"]["worst_median"] / 0.05)


def test_few_persons_reach_the_daily_bound_once_trips_must_settle(doc: dict[str, Any]) -> None:
    assert doc["bound_at_finest"]["persons_cut_share"] < 0.02


def test_the_noisiest_tick_is_the_latest_with_the_most_nodes() -> None:
    from cityscreen.privacy.person_day import now_budget

    budget = now_budget(Settings().now, period_s=86_400)
    at = noisiest_tick_ms(budget, 0, 64 * 2_000 - 1)  # ticks 1..63 complete
    assert at == 63 * 2_000


def test_coarser_cells_are_the_finest_cells_parents_as_the_aggregator_rolls_them_up() -> None:
    city = load_city()
    start = local_ms(city, PEAK_DAY, 4)
    tracks = Tracks(city, 500, 42, start, start + 3_600_000, (8, 7))
    fine = np.array(tracks.cells[8])[tracks.cell[8]]
    coarse = np.array(tracks.cells[7])[tracks.cell[7]]
    assert all(h3.cell_to_parent(f, 7) == c for f, c in zip(fine[:2000], coarse[:2000], strict=True))
    assert np.array_equal(tracks.parent_codes(8, 7)[tracks.cell[8]], tracks.cell[7])


def test_hours_in_two_pseudonym_periods_are_refused() -> None:
    with pytest.raises(CityScreenError, match="two pseudonym periods"):
        now_report(Settings(), persons=100, hours=[2, 8], say=lambda _: None)


@pytest.mark.parametrize(
    ("group", "change", "says"),
    [
        ("window", {"presence_ttl_s": 300}, "CITY_NOW__SETTLE_S"),
        ("now", {"resolutions": [9, 8]}, "CITY_NOW__RESOLUTIONS"),
        ("now", {"resolutions": []}, "CITY_NOW__RESOLUTIONS"),
    ],
)
def test_now_settings_the_layer_cannot_use_are_refused_with_the_fix(
    group: str, change: dict[str, Any], says: str
) -> None:
    base = Settings()
    settings = base.model_copy(update={group: getattr(base, group).model_copy(update=change)})
    with pytest.raises(CityScreenError, match=says):
        now_report(settings, persons=100, hours=[8], say=lambda _: None)


def _cli(*args: str) -> tuple[int, str, BaseException | None]:
    result = invoke(*args)
    return result.exit_code, result.output, result.exception


def test_the_command_prints_the_ratio_to_the_limit_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "now.json"
    code, output, _ = _cli("privacy", "now-report", "--persons", "500", "--hours", "5", "--out", str(out))
    assert code == 0, output
    assert "median relative error" in output and "ratio" in output
    assert json.loads(out.read_text())["persons"] == 500


@pytest.mark.parametrize("hours", ["eight", "8,25", ""])
def test_the_command_explains_a_bad_hours_list(hours: str) -> None:
    code, _, error = _cli("privacy", "now-report", "--hours", hours)
    assert code != 0
    assert isinstance(error, CityScreenError) and "local hours 0 to 23" in str(error)
