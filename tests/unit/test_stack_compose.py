"""docker-compose.yml is a valid Compose file (checked by the docker client; no engine needed)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from pydantic import ValidationError

REPO_ROOT = Path(__file__).resolve().parents[2]


def compose_command() -> list[str] | None:
    """`docker compose` (the v2 plugin) when present, else the standalone `docker-compose`."""
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
        if probe.returncode == 0:
            return ["docker", "compose"]
    standalone = shutil.which("docker-compose")
    return [standalone] if standalone else None


@pytest.fixture
def compose() -> list[str]:
    command = compose_command()
    if command is None:
        pytest.skip(
            "no docker compose client installed (needs the docker CLI's compose plugin or docker-compose)"
        )
    return command


def test_compose_file_is_valid(compose: list[str]) -> None:
    result = subprocess.run(
        [*compose, "-f", "docker-compose.yml", "config", "-q"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_app_services_wait_for_healthy_kafka_and_redis(compose: list[str]) -> None:
    yaml = pytest.importorskip("yaml")
    rendered = subprocess.run(
        [*compose, "-f", "docker-compose.yml", "config"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    services = yaml.safe_load(rendered)["services"]
    assert services["kafka"]["image"].startswith("apache/kafka:3.9.")
    for name in ("ingest", "aggregate", "gateway", "generator"):
        deps = services[name]["depends_on"]
        assert deps["kafka"]["condition"] == deps["redis"]["condition"] == "service_healthy", name
        assert deps["topics"]["condition"] == "service_completed_successfully", name
        assert services[name]["build"]["dockerfile"] == "deploy/Dockerfile", name
    assert all("healthcheck" in services[name] for name in ("kafka", "redis", "gateway"))


def test_the_image_copies_every_python_package() -> None:
    """A package added to pyproject but not copied into the image fails at import inside the container."""
    import tomllib

    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    packages = {p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]}
    dockerfile = (REPO_ROOT / "deploy" / "Dockerfile").read_text(encoding="utf-8")
    copied = {line.split()[1].rstrip("/") for line in dockerfile.splitlines() if line.startswith("COPY ")}
    assert packages <= copied, f"deploy/Dockerfile does not COPY {sorted(packages - copied)}"


def test_every_process_gets_the_secrets_and_production_refuses_their_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The pseudonym key, the operator tokens and the noise seed (stock noise, on by default, draws from
    it) come from the environment in every process, each with a public development default that
    production mode refuses."""
    yaml = pytest.importorskip("yaml")
    from cityscreen.settings import Settings
    from tests.unit.test_k8s_manifests import SECRET_VARIABLES

    services = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text(encoding="utf-8"))["services"]
    defaults: dict[str, str] = {}
    for name in ("topics", "ingest", "aggregate", "now", "gateway", "generator"):
        env = services[name]["environment"]
        for var in SECRET_VARIABLES:
            prefix = "${" + var + ":-"
            assert env[var].startswith(prefix) and env[var].endswith("}"), (name, var)
            defaults[var] = env[var].removeprefix(prefix).removesuffix("}")
    for name in [n for n in os.environ if n.startswith("CITY_")]:
        monkeypatch.delenv(name)
    for var, value in defaults.items():
        monkeypatch.setenv(var, value)
    Settings()  # the development defaults run a demo
    monkeypatch.setenv("CITY_MODE", "production")
    with pytest.raises(ValidationError) as refused:
        Settings()
    assert all(var in str(refused.value) for var in SECRET_VARIABLES)
