"""The live map in Debian's Chromium (headless, via Playwright) against the real pipeline.

A private stack is fed by the shipped fixture through the real ingest and aggregate workers
(`cityscreen replay fixtures/shenzhen-10min.jsonl.gz --asap`); the gateway serves the built web app.
Assertions compare what the page draws with the frames in Redis, never with hard-coded numbers.
Each test saves a screenshot under artifacts/.
"""

from __future__ import annotations

import base64
import json
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h3
import pytest
import redis

from cityscreen import store_keys
from cityscreen.frames import Frame, decode_frame
from cityscreen.settings import Settings, to_env
from services.gateway.testing import free_port
from services.stack import LocalStack, ManagedProcess, start_stack
from services.stack import spawn as spawn_process
from services.stack.testing import REPO_ROOT, isolated_settings, jar_cache_dir

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.timeout(600)]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    # WebGL without a GPU: ANGLE on SwiftShader is what renders deck.gl headless here
    "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
]
FIXTURE = REPO_ROOT / "fixtures" / "shenzhen-10min.jsonl.gz"
ARTIFACTS = REPO_ROOT / "artifacts"
TOKEN = "browser-test-token"
VIEWPORT = {"width": 1400, "height": 900}

# In-page pixel census of a PNG screenshot: hexagon colours (the yellow-red ramp) and the suppressed
# violet are far from the base map's blues, so counting them says whether the canvas shows them.
PIXEL_CENSUS_JS = """async (b64) => {
  const img = new Image();
  img.src = 'data:image/png;base64,' + b64;
  await img.decode();
  const c = document.createElement('canvas');
  [c.width, c.height] = [img.width, img.height];
  const ctx = c.getContext('2d');
  ctx.drawImage(img, 0, 0);
  const d = ctx.getImageData(0, 0, c.width, c.height).data;
  let ramp = 0, violet = 0;
  for (let i = 0; i < d.length; i += 4) {
    const [r, g, b] = [d[i], d[i + 1], d[i + 2]];
    if (r > 170 && b < 110 && r > g) ramp++;
    if (b > 170 && r > 100 && g < 140 && r < b) violet++;
  }
  return { ramp, violet };
}"""


@dataclass
class Feed:
    settings: Settings
    redis: redis.Redis
    api: ManagedProcess
    start_api: Callable[[], ManagedProcess]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.gateway.port}/#token={TOKEN}"

    def latest(self, res: int) -> Frame:
        data = self.redis.get(store_keys.latest_frame_key(res))
        assert data, f"no frame at res {res} in Redis"
        return decode_frame(data)


def poll(probe: Callable[[], Any], *, timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.2)


def http_ok(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="module")
def feed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Feed]:
    if not (REPO_ROOT / "web" / "dist" / "index.html").is_file():
        pytest.fail("web/dist is not built: run `make setup-test` (or `cd web && npm ci && npm run build`)")
    base = isolated_settings(tmp_path_factory.mktemp("browser-stack"))
    logs = tmp_path_factory.mktemp("browser-logs")
    children: list[ManagedProcess] = []
    with start_stack(base, cache_dir=jar_cache_dir()) as running:
        settings = running_settings(running)
        env = {**__import__("os").environ, **to_env(settings)}

        def run(*args: str) -> ManagedProcess:
            proc = spawn_process(f"{args[0]}-{len(children)}", [sys.executable, "-m", "services.cli", *args],
                                 log_dir=logs, env=env, cwd=REPO_ROOT)
            children.append(proc)
            return proc

        def start_api() -> ManagedProcess:
            api = run("api")
            api.wait_ready(lambda: http_ok(f"http://127.0.0.1:{settings.gateway.port}/api/v1/health/ready"),
                           timeout_s=60, what="gateway ready")
            return api

        client = redis.Redis.from_url(settings.redis.url)
        try:
            run("worker", "--role", "ingest")
            run("worker", "--role", "aggregate")
            api = start_api()
            replay = run("replay", str(FIXTURE), "--asap", "--no-progress")
            def released() -> bool:
                return all(client.zcard(store_keys.frame_index_key(r)) >= 2 for r in settings.window.resolutions)

            try:
                poll(released, timeout_s=240, what="frames from the fixture at every resolution")
            except BaseException:
                kept = {r: client.zcard(store_keys.frame_index_key(r)) for r in settings.window.resolutions}
                print(f"frames kept per res: {kept}; worker stats: {client.hgetall(store_keys.STATS_KEY)}")
                raise
            yield Feed(settings, client, api, start_api)
            replay.stop(5)
        finally:
            for proc in reversed(children):
                proc.stop(10.0)
                print(f"--- {proc.name} (exit {proc.returncode}):\n{proc.tail()}")
            client.close()


def running_settings(running: LocalStack) -> Settings:
    s = running.settings
    return s.model_copy(update={
        "gateway": s.gateway.model_copy(update={"port": free_port(), "operator_tokens": [TOKEN]}),
    })


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        pytest.fail("Chromium not found at /usr/bin/chromium: `make setup-test` installs it (apt-get install chromium)")
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(profile), executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True, viewport=VIEWPORT,
        )
        yield context
        context.close()


@pytest.fixture
def page(browser: Any, feed: Feed, request: pytest.FixtureRequest) -> Iterator[Any]:
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(feed.url)
    page.wait_for_function("() => window.__cityscreen?.layers?.[0]?.count > 0", timeout=60_000)
    yield page
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"browser-{request.node.name}.png"))
    page.close()
    assert errors == [], f"errors in the page: {errors}"


def state(page: Any) -> dict[str, Any]:
    got: dict[str, Any] = page.evaluate(
        "() => ({status: __cityscreen.status, messages: __cityscreen.messages, layers: __cityscreen.layers,"
        " shown: {res: __cityscreen.frames.shown.res, window_start_ms: __cityscreen.frames.shown.window_start_ms}})"
    )
    return got


def census(page: Any) -> dict[str, int]:
    page.wait_for_timeout(300)  # let deck.gl draw the last change (a render, not a timing assertion)
    shot = base64.b64encode(page.screenshot()).decode()
    got: dict[str, int] = page.evaluate(PIXEL_CENSUS_JS, shot)
    return got


def expected_rows(frame: Frame, key: str, bbox: list[float] | None) -> dict[str, float | None]:
    def inside(cell: str) -> bool:
        if bbox is None:
            return True
        lat, lng = h3.cell_to_latlng(cell)
        return bbox[0] <= lng <= bbox[2] and bbox[1] <= lat <= bbox[3]

    return {c: s[key] for c, s in frame.cells.items() if key in s and inside(c)}


def drawn_rows(page: Any, layer_id: str = "cells") -> dict[str, float | None]:
    layer = next(l for l in state(page)["layers"] if l["id"] == layer_id)
    return {r["hex"]: r["value"] for r in layer["data"]}


def subscribed_bbox(page: Any) -> list[float] | None:
    bbox: list[float] | None = page.evaluate("() => window.__cityscreen.subscription?.bbox ?? null")
    return bbox


def wait_shown_is_latest(page: Any, feed: Feed) -> Frame:
    """Wait until the page shows the frame Redis holds as latest (the replay may still be releasing)."""
    def same() -> Frame | None:
        shown = state(page)["shown"]
        frame = feed.latest(shown["res"])
        return frame if frame.window_start_ms == shown["window_start_ms"] else None

    result: Frame = poll(same, timeout_s=60, what="the page to show Redis's latest frame")
    return result


def test_page_loads_frames_arrive_and_hexagons_render(page: Any, feed: Feed) -> None:
    frame = wait_shown_is_latest(page, feed)
    assert state(page)["status"] == "live"
    expected = expected_rows(frame, "population.persons", subscribed_bbox(page))
    assert expected, "the fixture's latest frame has no population cells in view"
    assert drawn_rows(page) == expected
    assert census(page)["ramp"] > 1000, "the map canvas shows no hexagons"


def test_toggles_change_what_is_drawn(page: Any, feed: Feed) -> None:
    page.check("input[name=layer][value=transit]")
    page.wait_for_function("() => __cityscreen.layers[0].key === 'transit.tap_in'")
    frame = wait_shown_is_latest(page, feed)
    assert drawn_rows(page) == expected_rows(frame, "transit.tap_in", subscribed_bbox(page))
    assert any(l["id"] == "flows" for l in state(page)["layers"])
    page.uncheck("#toggle-flows")
    page.wait_for_function("() => !__cityscreen.layers.some(l => l.id === 'flows')")
    with_hexes = census(page)["ramp"]
    page.uncheck("#toggle-hexes")
    page.wait_for_function("() => __cityscreen.layers.length === 0")
    assert census(page)["ramp"] < with_hexes / 10, "hiding the hexagons left them on the canvas"


def test_suppressed_cells_show_as_suppressed(page: Any, feed: Feed) -> None:
    frame = wait_shown_is_latest(page, feed)
    bbox = subscribed_bbox(page)
    # a breakdown part with suppressed cells in view, found in the data rather than assumed
    candidates = sorted({k for s in frame.cells.values() for k, v in s.items() if v is None and k.startswith("population.persons|")})
    key = next((k for k in candidates if any(v is None for v in expected_rows(frame, k, bbox).values())), None)
    assert key is not None, "the fixture's latest frame has no suppressed population cells in view"
    dimension, category = key.split("|")[1].split("=")
    page.select_option("#breakdown", dimension)
    page.wait_for_function(f"() => __cityscreen.frames.shown.breakdown === {json.dumps(dimension)}")
    page.select_option("#category", category)
    page.wait_for_function(f"() => __cityscreen.layers[0].key === {json.dumps(key)}")
    frame = wait_shown_is_latest(page, feed)
    expected = expected_rows(frame, key, subscribed_bbox(page))
    layer = state(page)["layers"][0]
    assert {r["hex"] for r in layer["data"] if r["suppressed"]} == {c for c, v in expected.items() if v is None}
    assert census(page)["violet"] > 100, "suppressed cells are not drawn in their own colour"


def test_page_reconnects_after_gateway_restart(page: Any, feed: Feed) -> None:
    before = state(page)["messages"]
    feed.api.stop(10.0)
    page.wait_for_function("() => __cityscreen.status !== 'live'", timeout=60_000)
    assert page.get_attribute("#status", "data-state") in {"disconnected", "reconnecting"}
    feed.api = feed.start_api()
    page.wait_for_function(f"() => __cityscreen.status === 'live' && __cityscreen.messages > {before}", timeout=60_000)
    assert drawn_rows(page), "no hexagons after reconnecting"
    page.screenshot(path=str(ARTIFACTS / "browser-after-reconnect.png"))
