"""deploy/observability: the alert rules, the scrape config and the Grafana dashboard are well formed, and
every metric they query is one a gateway's /metrics really exports (promtool is not at hand: the YAML
and JSON are parsed and the metric names taken out of each PromQL expression)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from services.gateway.metrics import GatewayMetrics

ROOT = Path(__file__).resolve().parents[2]
OBSERVABILITY = ROOT / "deploy" / "observability"
PROMETHEUS_OWN = {"up"}  # series Prometheus writes itself for every target
PROMQL_WORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
                "bool", "offset", "inf", "nan"}  # fmt: skip
DURATION = re.compile(r"^\d+[smhdw]$")


def _rules() -> list[dict[str, Any]]:
    loaded = yaml.safe_load((OBSERVABILITY / "alerts.yml").read_text(encoding="utf-8"))
    return [rule for group in loaded["groups"] for rule in group["rules"]]


def _dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(
        (OBSERVABILITY / "grafana-dashboard.json").read_text(encoding="utf-8")
    )
    return loaded


def _dashboard_exprs() -> list[str]:
    return [t["expr"] for panel in _dashboard()["panels"] for t in panel["targets"]]


def metric_names(expr: str) -> set[str]:
    """The series names a PromQL expression reads: identifiers that are not functions, keywords, label
    names (in braces or by/without/on lists), durations or numbers."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges
    names = set()
    for match in re.finditer(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?", text):
        name, call = match.group(1), match.group(2)
        if not call and name.lower() not in PROMQL_WORDS:
            names.add(name)
    return names


def exported_names() -> set[str]:
    """The sample names a gateway's /metrics holds, with every pipeline counter and a lag entry set."""
    metrics = GatewayMetrics()
    metrics.ws_refused.labels(reason="origin").inc()
    stats = {b"records": b"5", b"windows_published": b"2", b"gate_ms": b"1500", b"deadletter.bad_json": b"1"}
    text = metrics.render(stats, {b"aggregate:city.sim.v1:0": b"7"}).decode()
    return {sample.name for family in text_string_to_metric_families(text) for sample in family.samples}


def test_metric_names_are_read_out_of_promql() -> None:
    expr = 'sum by (stage) (rate(a_total{job=~"x.*"}[5m])) / on () group_left () clamp_min(b, 1e-9) > 0.5'
    assert metric_names(expr) == {"a_total", "b"}


def test_the_pipeline_figures_are_exported_from_the_redis_snapshot() -> None:
    metrics = GatewayMetrics()
    stats = {b"records": b"5", b"windows_published": b"2", b"gate_ms": b"1500", b"deadletter.bad_json": b"3",
             b"dead_lettered": b"4", b"undecodable_records": b"1"}  # fmt: skip
    text = metrics.render(stats, {b"aggregate:city.sim.v1:0": b"7"}).decode()
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(text) for s in f.samples}  # fmt: skip
    assert samples["cityscreen_windows_published_total", ()] == 2
    assert samples["cityscreen_gate_seconds_total", ()] == 1.5
    assert samples["cityscreen_dead_lettered_total", (("reason", "bad_json"), ("stage", "ingest"))] == 3
    assert (
        samples["cityscreen_dead_lettered_total", (("reason", "late_or_undecodable"), ("stage", "aggregate"))]
        == 4
    )
    assert samples["cityscreen_pipeline_counter_total", (("name", "undecodable_records"),)] == 1
    lag_labels = (("partition", "0"), ("stage", "aggregate"), ("topic", "city.sim.v1"))
    assert samples["cityscreen_consumer_lag_records", lag_labels] == 7


@pytest.mark.parametrize("source", ["alerts", "dashboard"])
def test_every_metric_queried_is_exported(source: str) -> None:
    exprs = [r["expr"] for r in _rules()] if source == "alerts" else _dashboard_exprs()
    used = set().union(*(metric_names(e) for e in exprs))
    assert used, "no metric found: the name extraction is broken"
    assert used - exported_names() - PROMETHEUS_OWN == set()


def test_alert_rules_are_well_formed_and_documented() -> None:
    operations = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    names = [r["alert"] for r in _rules()]
    assert len(names) == len(set(names))
    wanted = {"ConsumerLagGrowing", "WindowsNotPublished", "DeadLetterRate", "GateSlow", "WebsocketDrops"}
    assert {f"CityScreen{w}" for w in wanted} <= set(names)
    for rule in _rules():
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert DURATION.match(rule["for"]), rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
        assert expr_balanced(rule["expr"]), rule["alert"]
        assert f"`{rule['alert']}`" in operations, f"docs/operations.md must explain {rule['alert']}"


def test_the_scrape_config_loads_the_rules_and_scrapes_the_gateways() -> None:
    config = yaml.safe_load((OBSERVABILITY / "prometheus.yml").read_text(encoding="utf-8"))
    assert config["rule_files"] == ["alerts.yml"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert all(job["metrics_path"] == "/metrics" for job in jobs.values())
    assert all(name.startswith("cityscreen-") for name in jobs)  # CityScreenGatewayDown matches on it
    kept = [r["regex"] for r in jobs["cityscreen-gateway"]["relabel_configs"] if r.get("action") == "keep"]
    assert "gateway" in kept


def test_the_dashboard_is_a_grafana_dashboard_over_prometheus() -> None:
    dash = _dashboard()
    assert dash["uid"] and dash["title"] and isinstance(dash["schemaVersion"], int)
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dash["panels"]:
        assert panel["targets"] and panel["gridPos"]["w"] <= 24
        assert all(
            t["datasource"]["type"] == "prometheus" and expr_balanced(t["expr"]) for t in panel["targets"]
        )


def expr_balanced(expr: str) -> bool:
    """Brackets of every kind close in order (the commonest slip in a hand-edited expression)."""
    stack: list[str] = []
    pairs = {")": "(", "]": "[", "}": "{"}
    for char in re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr):
        if char in "([{":
            stack.append(char)
        elif char in pairs and (not stack or stack.pop() != pairs[char]):
            return False
    return not stack
