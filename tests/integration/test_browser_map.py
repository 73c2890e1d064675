"""The live map in Debian's Chromium (headless, via Playwright) against a real gateway and Redis.

Where the frames come from is chosen by CITY_TEST_BROWSER_FEED:
- `direct` (default): the gateway process (`cityscreen api`) on a throwaway redis-server, with frames
  written to Redis in the release sink's layout once a second (`tests.gateway_support.write_frame`);
- `pipeline`: a private Kafka + Redis stack fed by the shipped fixture through the real ingest and
  aggregate workers (`cityscreen replay fixtures/shenzhen-10min.jsonl.gz --asap`).
Assertions compare what the page draws with the frame Redis holds for the window shown, never with
hard-coded numbers. Each test saves a screenshot under artifacts/.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h3
import pytest
import redis
import redis.asyncio as aioredis

from cityscreen import store_keys
from cityscreen.frames import Frame, decode_frame
from cityscreen.settings import Settings, load_settings, to_env
from services.gateway.testing import free_port, redis_server, synthetic_frame
from services.stack import ManagedProcess, start_stack
from services.stack import spawn as spawn_process
from services.stack.testing import REPO_ROOT, isolated_settings, jar_cache_dir
from tests.gateway_support import write_frame

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.timeout(600)]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # WebGL without a GPU: ANGLE on SwiftShader is what renders deck.gl headless here
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
]
FIXTURE = REPO_ROOT / "fixtures" / "shenzhen-10min.jsonl.gz"
ARTIFACTS = REPO_ROOT / "artifacts"
TOKEN = "browser-test-token"
VIEWPORT_W, VIEWPORT_H = 1400, 900

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
        data: Any = self.redis.get(store_keys.latest_frame_key(res))
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


FEED_SOURCE = os.environ.get("CITY_TEST_BROWSER_FEED", "direct")


def spawner(settings: Settings, logs: Path, children: list[ManagedProcess]) -> Callable[..., ManagedProcess]:
    env = {**os.environ, **to_env(settings)}

    def run(*args: str) -> ManagedProcess:
        proc = spawn_process(
            f"{args[0]}-{len(children)}",
            [sys.executable, "-m", "services.cli", *args],
            log_dir=logs,
            env=env,
            cwd=REPO_ROOT,
        )
        children.append(proc)
        return proc

    return run


def api_starter(run: Callable[..., ManagedProcess], settings: Settings) -> Callable[[], ManagedProcess]:
    def start_api() -> ManagedProcess:
        api: ManagedProcess = run("api")
        api.wait_ready(
            lambda: http_ok(f"http://127.0.0.1:{settings.gateway.port}/api/v1/health/ready"),
            timeout_s=60,
            what="gateway ready",
        )
        return api

    return start_api


def publish_synthetic(redis_url: str, resolutions: list[int], stop: threading.Event) -> None:
    """Release a new synthetic window at every resolution once a second until `stop` (the direct feed)."""

    async def loop() -> None:
        client = aioredis.Redis.from_url(redis_url)
        window_ms = 1_700_000_000_000
        try:
            while not stop.is_set():
                for res in resolutions:
                    await write_frame(
                        client, synthetic_frame(res, window_ms, rings=RINGS.get(res, 4)), history_s=3600
                    )
                window_ms += 60_000
                await asyncio.sleep(1.0)
        finally:
            await client.aclose()

    asyncio.run(loop())


RINGS = {8: 16, 7: 7, 6: 3}  # about the same area at every resolution


@pytest.fixture(scope="module")
def feed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Feed]:
    if not (REPO_ROOT / "web" / "dist" / "index.html").is_file():
        pytest.fail("web/dist is not built: run `make setup-test` (or `cd web && npm ci && npm run build`)")
    logs = tmp_path_factory.mktemp("browser-logs")
    children: list[ManagedProcess] = []
    with contextlib.ExitStack() as stack:
        if FEED_SOURCE == "pipeline":
            running = stack.enter_context(
                start_stack(
                    isolated_settings(tmp_path_factory.mktemp("browser-stack")), cache_dir=jar_cache_dir()
                )
            )
            settings = with_gateway(running.settings)
        else:
            url = stack.enter_context(redis_server(tmp_path_factory.mktemp("browser-redis")))
            base = load_settings()
            settings = with_gateway(
                base.model_copy(update={"redis": base.redis.model_copy(update={"url": url})})
            )
        run = spawner(settings, logs, children)
        start_api = api_starter(run, settings)
        client = redis.Redis.from_url(settings.redis.url)
        stop = threading.Event()
        try:
            api = start_api()
            if FEED_SOURCE == "pipeline":
                run("worker", "--role", "ingest")
                run("worker", "--role", "aggregate")
                run("replay", str(FIXTURE), "--asap", "--no-progress")
            else:
                threading.Thread(
                    target=publish_synthetic,
                    args=(settings.redis.url, settings.window.resolutions, stop),
                    daemon=True,
                ).start()

            def released() -> bool:
                return all(
                    client.zcard(store_keys.frame_index_key(r)) >= 2 for r in settings.window.resolutions
                )

            try:
                poll(released, timeout_s=240, what=f"frames at every resolution ({FEED_SOURCE} feed)")
            except BaseException:
                kept = {r: client.zcard(store_keys.frame_index_key(r)) for r in settings.window.resolutions}
                print(f"frames kept per res: {kept}; worker stats: {client.hgetall(store_keys.STATS_KEY)}")
                raise
            yield Feed(settings, client, api, start_api)
        finally:
            stop.set()
            for proc in reversed(children):
                proc.stop(10.0)
                print(f"--- {proc.name} (exit {proc.returncode}):\n{proc.tail()}")
            client.close()


def with_gateway(s: Settings) -> Settings:
    return s.model_copy(
        update={
            "gateway": s.gateway.model_copy(update={"port": free_port(), "operator_tokens": [TOKEN]}),
        }
    )


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        pytest.fail(
            "Chromium not found at /usr/bin/chromium: `make setup-test` installs it "
            "(Debian: apt-get install chromium)"
        )
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": VIEWPORT_W, "height": VIEWPORT_H},
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
    """The page's status, shown frame, subscription and layers, read in one go (they change together)."""
    got: dict[str, Any] = page.evaluate(
        """() => {
          const c = window.__cityscreen, f = c.frames.shown;
          const shown = f ? {res: f.res, window_start_ms: f.window_start_ms, breakdown: f.breakdown} : null;
          return {status: c.status, messages: c.messages, layers: c.layers,
                  bbox: c.subscription?.bbox ?? null, shown};
        }"""
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


def drawn(
    page: Any, feed: Feed, layer_id: str = "cells"
) -> tuple[dict[str, Any], dict[str, float | None], Frame]:
    """(page state, the hexagon rows drawn, the frame Redis holds for the window shown)."""
    st = state(page)
    layer = next(la for la in st["layers"] if la["id"] == layer_id)
    shown = st["shown"]
    data: Any = feed.redis.get(store_keys.frame_key(shown["res"], shown["window_start_ms"]))
    assert data, f"the page shows window {shown} which Redis does not hold"
    return st, {r["hex"]: r["value"] for r in layer["data"]}, decode_frame(data)


def test_page_loads_frames_arrive_and_hexagons_render(page: Any, feed: Feed) -> None:
    st, rows, frame = drawn(page, feed)
    assert st["status"] == "live"
    expected = expected_rows(frame, "population.persons", st["bbox"])
    assert expected, "the frame shown has no population cells in view"
    assert rows == expected
    assert census(page)["ramp"] > 1000, "the map canvas shows no hexagons"
    # frames keep arriving
    seen = st["messages"]
    page.wait_for_function(f"() => __cityscreen.messages > {seen}", timeout=120_000)


def test_toggles_change_what_is_drawn(page: Any, feed: Feed) -> None:
    page.check("input[name=layer][value=transit]")
    page.wait_for_function("() => __cityscreen.layers[0].key === 'transit.tap_in'")
    st, rows, frame = drawn(page, feed)
    assert rows == expected_rows(frame, "transit.tap_in", st["bbox"])
    assert any(la["id"] == "flows" for la in st["layers"])
    page.uncheck("#toggle-flows")
    page.wait_for_function("() => !__cityscreen.layers.some(l => l.id === 'flows')")
    with_hexes = census(page)["ramp"]
    assert with_hexes > 1000
    page.uncheck("#toggle-hexes")
    page.wait_for_function("() => __cityscreen.layers.length === 0")
    assert census(page)["ramp"] < with_hexes / 10, "hiding the hexagons left them on the canvas"


def test_suppressed_cells_show_as_suppressed(page: Any, feed: Feed) -> None:
    st, _, frame = drawn(page, feed)
    # a population key with suppressed cells in view, found in the data rather than assumed
    keys = sorted(
        {k for s in frame.cells.values() for k, v in s.items() if v is None and k.startswith("population.")}
    )
    key = next((k for k in keys if None in expected_rows(frame, k, st["bbox"]).values()), None)
    assert key is not None, "the frame shown has no suppressed population cells in view"
    if "|" in key:
        dimension, category = key.split("|")[1].split("=")
        page.select_option("#breakdown", dimension)
        page.wait_for_function(f"() => __cityscreen.frames.shown?.breakdown === {json.dumps(dimension)}")
        page.select_option("#category", category)
    page.wait_for_function(f"() => __cityscreen.layers[0].key === {json.dumps(key)}")
    st, rows, frame = drawn(page, feed)
    expected = expected_rows(frame, key, st["bbox"])
    assert rows == expected
    suppressed = {r["hex"] for r in st["layers"][0]["data"] if r["suppressed"]}
    assert suppressed == {c for c, v in expected.items() if v is None} != set()
    assert census(page)["violet"] > 100, "suppressed cells are not drawn in their own colour"


def test_page_reconnects_after_gateway_restart(page: Any, feed: Feed) -> None:
    before = state(page)["messages"]
    feed.api.stop(10.0)
    page.wait_for_function("() => __cityscreen.status !== 'live'", timeout=60_000)
    assert page.get_attribute("#status", "data-state") in {"disconnected", "reconnecting", "connecting"}
    feed.api = feed.start_api()
    page.wait_for_function(
        f"() => __cityscreen.status === 'live' && __cityscreen.messages > {before}", timeout=60_000
    )
    _, rows, _ = drawn(page, feed)
    assert rows, "no hexagons after reconnecting"
