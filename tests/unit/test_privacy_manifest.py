"""The privacy manifest the gateway serves and the map shows."""

from __future__ import annotations

import json

from cityscreen.privacy import build_manifest
from cityscreen.settings import PrivacySettings


def test_threshold_manifest_names_k_unit_resolutions_window_and_rules() -> None:
    m = build_manifest(PrivacySettings(min_persons=20), window_s=60, resolutions=[6, 8, 7], flow_res=6)
    assert json.loads(json.dumps(m)) == m
    assert (m["k"], m["min_persons"], m["privacy_unit"]) == (20, 20, "person")
    assert m["resolutions"] == [8, 7, 6] and m["window_s"] == 60 and m["flow_res"] == 6
    assert m["dp_enabled"] is False and m["epsilon_per_window"] == 0.0 and m["epsilon_per_day"] == 0.0
    assert any("complementary" in r for r in m["rules"]) and any("dominance" in r for r in m["rules"])
    assert m["defaults"]["min_persons"] == PrivacySettings().min_persons
    assert m["defaults"]["dp_mechanism"] == PrivacySettings().dp_mechanism


def test_dp_manifest_reports_epsilon_per_window_and_day_and_warns_when_large() -> None:
    m = build_manifest(PrivacySettings(dp_enabled=True), window_s=60, resolutions=[8, 7, 6])
    assert m["mechanism"] == "laplace" and m["epsilon_per_window"] == 1.0
    assert m["epsilon_per_day"] == 1440.0
    assert "warning" in m and "1.44e+03" in m["warning"]
    assert m["dp"]["statistics_per_person_per_window"] == 3 * (4 + 1 + 6 + 6) + 2  # see test_dp
    small = build_manifest(
        PrivacySettings(dp_enabled=True, epsilon_per_window=0.005), window_s=3600, resolutions=[8]
    )
    assert "warning" not in small and small["epsilon_per_day"] == 0.12
