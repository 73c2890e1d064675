"""deploy/k8s: every manifest is valid against the Kubernetes schemas (kubernetes-validate bundles them,
so this runs offline), and the manifests keep the promises docs/operations.md makes: no secret in them,
only the gateway reachable from outside, probes and resource requests, settings that really exist."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from cityscreen.events import INGEST_TOPICS
from cityscreen.settings import Settings, to_env

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
K8S_VERSION = "1.31.0"  # a release the bundled schemas cover; the manifests use only stable APIs
SECRET = "cityscreen-secrets"
SECRET_VARIABLES = ("CITY_PSEUDONYM_SECRET", "CITY_GATEWAY__OPERATOR_TOKENS", "CITY_PRIVACY__DP_SEED")


def _kustomization() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    return loaded


def _documents() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for name in _kustomization()["resources"]:
        docs.extend(d for d in yaml.safe_load_all((K8S / name).read_text(encoding="utf-8")) if d)
    return docs


def _named(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in _documents() if d["kind"] == kind}


def _pod_specs() -> dict[str, dict[str, Any]]:
    kinds = ("Deployment", "StatefulSet", "Job")
    return {d["metadata"]["name"]: d["spec"]["template"] for d in _documents() if d["kind"] in kinds}


def _config() -> dict[str, str]:
    data: dict[str, str] = _named("ConfigMap")["cityscreen-config"]["data"]
    return data


def test_the_kustomization_lists_every_manifest() -> None:
    listed = set(_kustomization()["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk


@pytest.mark.parametrize("doc", _documents(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_each_manifest_is_valid_against_the_kubernetes_schema(doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_no_secret_is_in_the_manifests_only_referenced() -> None:
    assert not _named("Secret"), "secrets are created by the operator (docs/operations.md), never committed"
    assert not set(SECRET_VARIABLES) & set(_config())
    for name, template in _pod_specs().items():
        for container in template["spec"]["containers"]:
            if container["image"] != "cityscreen":
                continue
            refs = [e["secretRef"]["name"] for e in container.get("envFrom", []) if "secretRef" in e]
            assert refs == [SECRET], f"{name}: production mode needs the secrets in every process"


def test_the_config_holds_real_settings_that_validate_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    known = set(to_env(Settings()))
    assert set(_config()) <= known, set(_config()) - known
    for key, value in _config().items():
        monkeypatch.setenv(key, value)
    for key in SECRET_VARIABLES:  # stand-ins for what the operator puts in the Secret
        monkeypatch.setenv(key, '["a-long-random-operator-token"]' if "TOKENS" in key else "x" * 32)
    settings = Settings()
    assert settings.mode == "production"
    assert settings.kafka.replication_factor == 3


def test_only_the_gateway_is_reachable_from_outside() -> None:
    exposed = {n for n, s in _named("Service").items() if s["spec"].get("type", "ClusterIP") != "ClusterIP"}
    assert exposed == {"gateway"}
    policies = _named("NetworkPolicy")
    deny = policies["default-deny-ingress"]["spec"]
    assert deny["podSelector"] == {} and deny["policyTypes"] == ["Ingress"] and "ingress" not in deny
    open_to_all = [
        p["spec"]["podSelector"]
        for p in policies.values()
        if any("from" not in rule for rule in p["spec"].get("ingress", []))
    ]
    assert open_to_all == [{"matchLabels": {"app.kubernetes.io/name": "gateway"}}]


def test_every_container_requests_resources_and_the_gateway_is_probed_and_autoscaled() -> None:
    for name, template in _pod_specs().items():
        for container in template["spec"]["containers"]:
            assert container["resources"]["requests"].keys() >= {"cpu", "memory"}, name
    gateway = _pod_specs()["gateway"]["spec"]["containers"][0]
    assert gateway["readinessProbe"]["httpGet"]["path"] == "/api/v1/health/ready"
    assert gateway["livenessProbe"]["httpGet"]["path"] == "/api/v1/health"
    hpa = _named("HorizontalPodAutoscaler")["gateway"]["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "gateway"}


def test_workers_fit_their_partitions_and_kafka_is_replicated() -> None:
    deployments = _named("Deployment")
    assert deployments["aggregate"]["spec"]["replicas"] <= int(_config()["CITY_KAFKA__PARTITIONS"])
    assert deployments["ingest"]["spec"]["replicas"] <= len(INGEST_TOPICS)  # one partition per raw topic
    kafka = _named("StatefulSet")["kafka"]
    env = {e["name"]: e.get("value") for e in kafka["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert kafka["spec"]["replicas"] == 3
    assert env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == "3" and env["KAFKA_MIN_INSYNC_REPLICAS"] == "2"
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"].count("@") == 3
