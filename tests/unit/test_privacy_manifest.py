"""The privacy manifest the gateway serves and the map shows."""

from __future__ import annotations

import json

from cityscreen.privacy import build_manifest, manifest_for
from cityscreen.settings import PrivacySettings, Settings
from tests.support.gate_modes import THRESHOLD, threshold


def test_threshold_manifest_names_k_unit_resolutions_window_and_rules() -> None:
    m = build_manifest(threshold(min_persons=20), window_s=60, resolutions=[6, 8, 7], flow_res=6)
    assert json.loads(json.dumps(m)) == m
    assert (m["k"], m["min_persons"], m["privacy_unit"]) == (20, 20, "person")
    assert m["resolutions"] == [8, 7, 6] and m["window_s"] == 60 and m["flow_res"] == 6
    assert m["dp_enabled"] is False and m["epsilon_per_window"] == 0.0 and m["epsilon_per_day"] == 0.0
    assert any("complementary" in r for r in m["rules"]) and any("dominance" in r for r in m["rules"])
    defaults = PrivacySettings()
    assert m["defaults"] == {name: getattr(defaults, name) for name in m["defaults"]}
    assert m["defaults"]["stock_noise"] is True


def test_dp_manifest_reports_epsilon_per_window_and_day_and_warns_when_large() -> None:
    m = build_manifest(PrivacySettings(dp_enabled=True), window_s=60, resolutions=[8, 7, 6])
    assert m["mechanism"] == "laplace" and m["epsilon_per_window"] == 1.0
    assert m["epsilon_per_day"] == 1440.0
    assert "warning" in m and "is 1,440:" in m["warning"]
    assert m["dp"]["statistics_per_person_per_window"] == 3 * (4 + 1 + 6 + 6) + 2  # see test_dp
    small = build_manifest(
        PrivacySettings(dp_enabled=True, epsilon_per_window=0.005), window_s=3600, resolutions=[8]
    )
    assert "warning" not in small and small["epsilon_per_day"] == 0.12


def test_the_now_layer_states_its_budget_per_person_day_and_composes_with_dp_mode() -> None:
    settings = Settings(privacy=THRESHOLD)
    m = manifest_for(settings)
    now = m["now_layer"]
    assert now["epsilon_per_person_day"] <= settings.now.epsilon_per_person_day
    assert now["rho_per_person_day"] == m["person_day"]["total_rho"]  # thresholds only: no DP final layer
    assert m["epsilon_per_person_day"] == m["person_day"]["total_epsilon"] == now["epsilon_per_person_day"]
    assert m["person_day"]["final_rho"] is None

    gaussian = PrivacySettings(dp_enabled=True, dp_mechanism="discrete_gaussian", epsilon_per_window=0.01)
    with_dp = manifest_for(settings.model_copy(update={"privacy": gaussian}))
    day = with_dp["person_day"]
    assert day["final_rho"] > 0 and day["total_rho"] == day["now_rho"] + day["final_rho"]
    assert with_dp["epsilon_per_person_day"] == day["total_epsilon"] > now["epsilon_per_person_day"]

    now_off = settings.now.model_copy(update={"enabled": False})
    off = manifest_for(settings.model_copy(update={"now": now_off}))
    assert "now_layer" not in off and "epsilon_per_person_day" not in off
