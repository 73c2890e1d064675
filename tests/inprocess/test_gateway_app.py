"""The gateway's REST surface through Starlette's TestClient, against a throwaway redis-server."""

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import redis
from fastapi.testclient import TestClient

from cityscreen import store_keys
from cityscreen.frames import Frame
from cityscreen.settings import load_settings
from services.gateway.app import create_app
from services.gateway.testing import demo_cells, make_frame

TOKEN = "test-operator-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def tiny_city(path: Path) -> Path:
    ring = [[113.9, 22.45], [114.2, 22.45], [114.2, 22.65], [113.9, 22.65], [113.9, 22.45]]
    city = {
        "name": "Tinytown",
        "utc_offset_h": 8,
        "bbox": {"min_lat": 22.45, "max_lat": 22.65, "min_lng": 113.9, "max_lng": 114.2},
        "outline": ring,
        "districts": [
            {
                "id": "d1",
                "name": "One",
                "population": 1000,
                "jobs": 500,
                "center": [114.05, 22.55],
                "polygon": ring,
            }
        ],
        "metro_lines": [
            {
                "id": "L1",
                "name": "Line 1",
                "color": "#00a0e9",
                "stations": [
                    {"id": "s1", "name": "A", "lat": 22.5, "lng": 114.0},
                    {"id": "s2", "name": "B", "lat": 22.55, "lng": 114.1},
                ],
            }
        ],
        "merchant_clusters": [
            {
                "id": "m1",
                "name": "Mall",
                "lat": 22.54,
                "lng": 114.05,
                "radius_m": 300,
                "weight": 1,
                "categories": {"food": 1.0},
            }
        ],
        "venues": [],
    }
    path.write_text(json.dumps(city))
    return path


@pytest.fixture
def make_client(redis_url: str, tmp_path: Path) -> Iterator[Callable[..., TestClient]]:
    clients: list[TestClient] = []

    def make(**gateway: Any) -> TestClient:
        settings = load_settings(
            redis={"url": redis_url},
            gateway={"operator_tokens": [TOKEN], "web_dist": tmp_path / "no-dist", **gateway},
            generator={"city_file": tiny_city(tmp_path / "city.json")},
        )
        client = TestClient(create_app(settings))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for c in clients:
        c.__exit__(None, None, None)


def test_health_and_ready(make_client: Callable[..., TestClient]) -> None:
    client = make_client()
    assert client.get("/api/v1/health").json() == {"status": "ok"}
    assert client.get("/api/v1/health/ready").json() == {"status": "ready"}


def test_ready_is_503_without_redis(tmp_path: Path) -> None:
    settings = load_settings(redis={"url": "redis://127.0.0.1:1/0"}, gateway={"web_dist": tmp_path})
    with TestClient(create_app(settings)) as client:
        response = client.get("/api/v1/health/ready")
    assert response.status_code == 503


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}])
def test_data_needs_a_token(make_client: Callable[..., TestClient], headers: dict[str, str]) -> None:
    response = make_client().get("/api/v1/frames/latest?res=7", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


def test_latest_frame_filtered(
    make_client: Callable[..., TestClient], store: Callable[[Frame], None]
) -> None:
    client = make_client()
    assert client.get("/api/v1/frames/latest?res=7", headers=AUTH).status_code == 404
    store(make_frame())
    body = client.get("/api/v1/frames/latest?res=7&layers=population&breakdown=gender", headers=AUTH).json()
    first, second = demo_cells(7, rings=1)[:2]
    assert body["cells"][first] == {
        "population.persons": 40.0,
        "population.persons|gender=F": 22.0,
        "population.persons|gender=M": 18.0,
    }
    assert body["cells"][second] == {"population.persons": None}  # suppressed, not absent
    far = client.get("/api/v1/frames/latest?res=7&bbox=0,0,1,1", headers=AUTH).json()
    assert far["cells"] == {}


@pytest.mark.parametrize("query", ["res=9", "res=7&layers=weather", "res=7&bbox=1,2", "res=7&breakdown=x"])
def test_bad_queries_are_422(make_client: Callable[..., TestClient], query: str) -> None:
    assert make_client().get(f"/api/v1/frames/latest?{query}", headers=AUTH).status_code == 422


def test_windows_frame_at_and_cell_history(
    make_client: Callable[..., TestClient], store: Callable[[Frame], None]
) -> None:
    client = make_client()
    for start in (60_000, 120_000, 180_000):
        store(make_frame(window_start_ms=start, published_ms=start + 90_000))
    assert client.get("/api/v1/frames/windows?res=7", headers=AUTH).json()["window_starts_ms"] == [
        60_000,
        120_000,
        180_000,
    ]
    assert client.get("/api/v1/frames/120000?res=7", headers=AUTH).json()["window_start_ms"] == 120_000
    assert client.get("/api/v1/frames/999?res=7", headers=AUTH).status_code == 404
    cell = demo_cells(7, rings=1)[0]
    history = client.get(f"/api/v1/cells/{cell}/history?windows=2&layers=payments", headers=AUTH).json()
    assert [w["window_start_ms"] for w in history["windows"]] == [120_000, 180_000]
    assert history["windows"][0]["stats"] == {"payments.count": 12.0}
    assert client.get("/api/v1/cells/nonsense/history", headers=AUTH).status_code == 422


def test_totals_sum_released_cells_of_the_coarsest_resolution(
    make_client: Callable[..., TestClient], store: Callable[[Frame], None]
) -> None:
    client = make_client()
    assert client.get("/api/v1/totals").status_code == 401
    assert client.get("/api/v1/totals", headers=AUTH).json() == {"res": 6, "windows": []}
    for start in (60_000, 120_000):
        store(make_frame(res=6, window_start_ms=start))
    store(make_frame(res=7, window_start_ms=120_000))  # another resolution: not summed with res 6
    body = client.get("/api/v1/totals", headers=AUTH).json()
    assert body["res"] == 6
    assert [w["window_start_ms"] for w in body["windows"]] == [60_000, 120_000]
    # make_frame: 40 persons released in one cell, suppressed in the other
    assert body["windows"][1]["totals"]["population.persons"] == 40.0
    assert body["windows"][1]["suppressed_cells"]["population.persons"] == 1
    assert body["windows"][1]["totals"]["transit.tap_in"] == 15.0
    last = client.get("/api/v1/totals?res=7&windows=1", headers=AUTH).json()
    assert [w["window_start_ms"] for w in last["windows"]] == [120_000]
    assert client.get("/api/v1/totals?res=9", headers=AUTH).status_code == 422
    assert client.get("/api/v1/totals?windows=0", headers=AUTH).status_code == 422


def test_manifest_from_redis_else_built(make_client: Callable[..., TestClient], redis_url: str) -> None:
    client = make_client()
    sync = redis.Redis.from_url(redis_url)
    sync.delete(store_keys.MANIFEST_KEY)
    built = client.get("/api/v1/privacy/manifest").json()
    assert built["min_persons"] == 10
    sync.set(store_keys.MANIFEST_KEY, json.dumps({"min_persons": 25, "source": "sink"}))
    assert client.get("/api/v1/privacy/manifest").json() == {"min_persons": 25, "source": "sink"}
    sync.delete(store_keys.MANIFEST_KEY)
    sync.close()


def test_city_config_metrics_openapi(make_client: Callable[..., TestClient]) -> None:
    client = make_client()
    city = client.get("/api/v1/city").json()
    assert city["name"] == "Tinytown" and city["metro_lines"][0]["stations"][1]["name"] == "B"
    config = client.get("/api/v1/config").json()
    assert config["resolutions"] == [8, 7, 6] and "gender" in config["breakdowns"]
    assert config["data_since_ms"] is None  # only `up` on a fresh run knows where the data begins
    client.get("/api/v1/frames/latest?res=7")  # one refused call
    assert "cityscreen_http_unauthorized_total 1.0" in client.get("/metrics").text
    paths = client.get("/openapi.json").json()["paths"]
    assert {
        "/api/v1/frames/latest",
        "/api/v1/cells/{cell}/history",
        "/api/v1/privacy/manifest",
        "/api/v1/totals",
    } <= set(paths)


def test_serves_the_built_web_app(redis_url: str, tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<title>CityScreen</title>")
    settings = load_settings(redis={"url": redis_url}, gateway={"web_dist": tmp_path})
    with TestClient(create_app(settings)) as client:
        assert "CityScreen" in client.get("/").text
        assert client.get("/api/v1/health").status_code == 200
    assert msgspec.json.decode(b"1") == 1
