"""The live map in Debian's Chromium (headless, via Playwright) against the real pipeline fed by the fixture.

A private Kafka + Redis stack (its clean topics hold nothing but the fixture), the real ingest and
aggregate workers, the real gateway (`cityscreen api`) and the real replay command
(`cityscreen replay fixtures/shenzhen-10min.jsonl.gz --asap`). The fixture was recorded on a fixed date;
the replay moves it by whole days so its last event falls within the day before now, which the ingest
edge's skew rule (`max_event_skew_s`, 7 days by default) accepts: the feed fixture checks that no event
was dead-lettered for its time rather than loosening the rule.

The page opens on the whole city, so it views the coarsest resolution, where ten minutes of the fixture
give both released cells (at least k persons) and suppressed ones. Assertions compare what the page draws
with the frame Redis holds for the window shown, never with hard-coded numbers. Each test saves a
screenshot under artifacts/.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import h3
import pytest
import redis

from cityscreen import store_keys
from cityscreen.city import District, load_city
from cityscreen.frames import Frame, decode_frame
from cityscreen.settings import Settings, to_env
from services.stack import ManagedProcess, start_stack
from services.stack import spawn as spawn_process
from services.stack.ports import free_port
from services.stack.testing import REPO_ROOT, isolated_settings, jar_cache_dir
from tests.support.waiting import wait_for

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
# A res-6 hexagon covers thousands of pixels at the city-wide zoom; the base map alone has a few
# thousand ramp-coloured pixels (red and orange metro lines) and almost no violet.
HEX_PIXELS = 10_000

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

    def get_json(self, path: str) -> Any:
        import httpx

        headers = {"Authorization": f"Bearer {TOKEN}"}
        url = f"http://127.0.0.1:{self.settings.gateway.port}/api/v1/{path}"
        return httpx.get(url, headers=headers, timeout=10).raise_for_status().json()

    def frame(self, res: int, window_start_ms: int) -> Frame:
        data: Any = self.redis.get(store_keys.frame_key(res, window_start_ms))
        return decode_frame(data)

    def latest(self, res: int) -> Frame:
        data: Any = self.redis.get(store_keys.latest_frame_key(res))
        assert data, f"no frame at res {res} in Redis"
        return decode_frame(data)


# an error in a probe here fails the test at once (the page and the feed exist by then), not a "not yet"
poll = functools.partial(wait_for, interval_s=0.2, retry_on=())


def http_ok(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


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


@pytest.fixture(scope="module")
def feed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Feed]:
    if not (REPO_ROOT / "web" / "dist" / "index.html").is_file():
        pytest.fail("web/dist is not built: run `make setup-test` (or `cd web && npm ci && npm run build`)")
    logs = tmp_path_factory.mktemp("browser-logs")
    children: list[ManagedProcess] = []
    # A private stack rather than the session's: other tests leave events stamped "now" on the shared
    # clean topics, which would carry the aggregate worker's watermark past the replayed fixture's times
    # and dead-letter all of it as late.
    data_dir = tmp_path_factory.mktemp("browser-stack")
    with start_stack(isolated_settings(data_dir), cache_dir=jar_cache_dir()) as running:
        settings = with_gateway(running.settings)
        run = spawner(settings, logs, children)
        start_api = api_starter(run, settings)
        client = redis.Redis.from_url(settings.redis.url)
        try:
            api = start_api()
            run("worker", "--role", "ingest")
            run("worker", "--role", "aggregate")
            replay = run("replay", str(FIXTURE), "--asap", "--no-progress")

            def released() -> bool:
                return all(
                    client.zcard(store_keys.frame_index_key(r)) >= 2 for r in settings.window.resolutions
                )

            try:
                poll(released, timeout_s=240, what="frames at every resolution from the replayed fixture")
                poll(lambda: not replay.is_alive(), timeout_s=120, what="the replay to finish")
                # the fixture's ten minutes lie in one quarter hour of spend, transit and flows: it
                # closes once the feed is idle, and the minute that ends it shows it
                poll(lambda: spanned_windows(client, min(settings.window.resolutions)), timeout_s=240,
                     what="a minute frame showing the quarter hour of spend")  # fmt: skip
            except BaseException:
                kept = {r: client.zcard(store_keys.frame_index_key(r)) for r in settings.window.resolutions}
                print(f"frames kept per res: {kept}; worker stats: {client.hgetall(store_keys.STATS_KEY)}")
                raise
            assert replay.returncode == 0, replay.failure_message("replay failed")
            counters = cast(dict[bytes, bytes], client.hgetall(store_keys.STATS_KEY))
            stats = {k.decode(): int(v) for k, v in counters.items()}
            assert stats.get("deadletter.ts_skew", 0) == 0, f"fixture events refused for their time: {stats}"
            print(f"released windows: {released_windows(client, settings.window.resolutions)}")
            yield Feed(settings, client, api, start_api)
        finally:
            with contextlib.suppress(redis.RedisError):
                print(f"released windows at the end: {released_windows(client, settings.window.resolutions)}")
            for proc in reversed(children):
                proc.stop(10.0)
                print(f"--- {proc.name} (exit {proc.returncode}):\n{proc.tail()}")
            client.close()


def released_windows(client: redis.Redis, resolutions: list[int]) -> dict[int, list[tuple[int, int, int]]]:
    """Per resolution: (window start, cells with a released population count, suppressed ones)."""
    out: dict[int, list[tuple[int, int, int]]] = {}
    for res in resolutions:
        starts: Any = client.zrange(store_keys.frame_index_key(res), 0, -1)
        for start in starts:
            data: Any = client.get(store_keys.frame_key(res, int(start)))
            cells = decode_frame(data).cells.values() if data else []
            values = [s["population.persons"] for s in cells if "population.persons" in s]
            shown = sum(v is not None for v in values)
            out.setdefault(res, []).append((int(start), shown, len(values) - shown))
    return out


def spanned_windows(client: redis.Redis, res: int) -> list[int]:
    """Base windows at `res` whose frame shows a longer window of spend."""
    out = []
    starts: Any = client.zrange(store_keys.frame_index_key(res), 0, -1)
    for start in starts:
        data: Any = client.get(store_keys.frame_key(res, int(start)))
        if data and "payments" in decode_frame(data).spans:
            out.append(int(start))
    return out


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
    ready = "() => window.__cityscreen?.status === 'live' && window.__cityscreen.frames.shown"
    yield from opened_page(browser, feed.url, request.node.name, ready)


def opened_page(browser: Any, url: str, name: str, ready_js: str) -> Iterator[Any]:
    """A page at `url` once `ready_js` holds; afterwards its screenshot under artifacts/, and no error
    the page raised meanwhile."""
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    page.wait_for_function(ready_js, timeout=60_000)
    yield page
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"browser-{name}.png"))
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
        latlng: tuple[float, float] = h3.cell_to_latlng(cell)
        lat, lng = latlng
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


def window_with_people(feed: Feed, res: int) -> int:
    """The window at `res` with the most released population cells, among those that also have suppressed
    ones (found in the data: which windows qualify depends on the pipeline, not on this test), and that
    show a longer window of spend, transit and flows (those ended by or before their end)."""
    windows = released_windows(feed.redis, [res])[res]
    both = [(shown, start) for start, shown, hidden in windows if shown and hidden]
    assert both, f"no window at res {res} has both released and suppressed population cells: {windows}"
    spanned = [(shown, start) for shown, start in both if "payments" in feed.frame(res, start).spans]
    assert spanned, f"no window at res {res} shows a longer window of spend: {windows}"
    return max(spanned)[1]


def span_text(frame: Frame, layer: str, utc_offset_h: float) -> str:
    """ "08:00–08:15": the window of a layer as the page labels it, in the city's local time."""
    start, end = (
        time.strftime("%H:%M", time.gmtime(ms / 1000 + utc_offset_h * 3600)) for ms in frame.spans[layer]
    )
    return f"{start}–{end}"


def show_window(page: Any, window_start_ms: int) -> None:
    """Pause the page on `window_start_ms` with its time scrubber, as an operator would."""
    page.wait_for_function(f"() => (__cityscreen.windows ?? []).includes({window_start_ms})", timeout=60_000)
    index = page.evaluate(f"() => __cityscreen.windows.indexOf({window_start_ms})")
    page.fill("#scrubber", str(index))
    page.wait_for_function(
        f"() => __cityscreen.frames.shown?.window_start_ms === {window_start_ms}"
        " && __cityscreen.layers[0]?.count > 0",
        timeout=60_000,
    )


def released_and_suppressed(rows: dict[str, float | None]) -> tuple[int, int]:
    released = sum(1 for v in rows.values() if v is not None)
    return released, len(rows) - released


def test_page_loads_frames_arrive_and_hexagons_render(page: Any, feed: Feed) -> None:
    coarsest = min(feed.settings.window.resolutions)
    # the page shows the newest window the pipeline released (a snapshot or a live frame)
    newest = poll(lambda: feed.latest(coarsest).window_start_ms, timeout_s=10, what="the newest frame")
    page.wait_for_function(f"() => __cityscreen.frames.shown?.window_start_ms >= {newest}", timeout=120_000)
    st, rows, frame = drawn(page, feed)
    assert st["status"] == "live"
    assert st["shown"]["res"] == coarsest, "the whole city in view should show the coarsest cells"
    assert rows == expected_rows(frame, "population.persons", st["bbox"])
    # a window with people in it, paused on with the time scrubber
    show_window(page, window_with_people(feed, coarsest))
    st, rows, frame = drawn(page, feed)
    expected = expected_rows(frame, "population.persons", st["bbox"])
    assert rows == expected
    released, suppressed = released_and_suppressed(expected)
    assert released > 0 and suppressed > 0, f"in view: {released} released, {suppressed} suppressed"
    assert census(page)["ramp"] > HEX_PIXELS, "the map canvas shows no released hexagons"
    # messages keep arriving (frames, or heartbeats between windows once the fixture has played out)
    seen = state(page)["messages"]
    page.wait_for_function(f"() => __cityscreen.messages > {seen}", timeout=120_000)


def test_toggles_change_what_is_drawn(page: Any, feed: Feed) -> None:
    show_window(page, window_with_people(feed, min(feed.settings.window.resolutions)))
    _, people, _ = drawn(page, feed)
    with_people = census(page)
    page.check("input[name=layer][value=transit]")
    page.wait_for_function("() => __cityscreen.layers[0].key === 'transit.tap_in'")
    st, rows, frame = drawn(page, feed)
    assert rows == expected_rows(frame, "transit.tap_in", st["bbox"])
    assert rows != people, "the transit layer draws the same cells and values as the population layer"
    assert census(page) != with_people, "switching layers left the canvas unchanged"
    page.check("input[name=layer][value=population]")
    page.wait_for_function("() => __cityscreen.layers[0].key === 'population.persons'")
    assert any(la["id"] == "flows" for la in state(page)["layers"])
    page.uncheck("#toggle-flows")
    page.wait_for_function("() => !__cityscreen.layers.some(l => l.id === 'flows')")
    with_hexes = census(page)
    assert with_hexes["ramp"] > HEX_PIXELS and with_hexes["violet"] > HEX_PIXELS
    page.uncheck("#toggle-hexes")
    page.wait_for_function("() => __cityscreen.layers.length === 0")
    without = census(page)
    # the base map's metro lines share the ramp's reds, so some ramp pixels remain
    assert without["ramp"] < with_hexes["ramp"] / 10, "hiding the hexagons left them on the canvas"
    assert without["violet"] < with_hexes["violet"] / 10, "hiding the hexagons left suppressed cells"


def test_suppressed_cells_show_as_suppressed(page: Any, feed: Feed) -> None:
    show_window(page, window_with_people(feed, min(feed.settings.window.resolutions)))
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
    assert census(page)["violet"] > HEX_PIXELS, "suppressed cells are not drawn in their own colour"


@pytest.mark.faults  # issue 16's "the gateway restarted: browsers reconnect and resume"
def test_page_reconnects_after_gateway_restart(page: Any, feed: Feed) -> None:
    before = state(page)["messages"]
    feed.api.stop(10.0)
    page.wait_for_function("() => __cityscreen.status !== 'live'", timeout=60_000)
    assert page.get_attribute("#status", "data-state") in {"disconnected", "reconnecting", "connecting"}
    feed.api = feed.start_api()
    page.wait_for_function(
        f"() => __cityscreen.status === 'live' && __cityscreen.messages > {before}", timeout=60_000
    )

    # the new socket subscribed again and shows the newest window, drawn as stored. Polled: run alone
    # (`make test-faults`) this test comes right after the feed fixture, while the worker may still
    # publish the fixture's last windows, which reach the page as frames after its snapshot
    def on_newest() -> bool:
        shown = state(page)["shown"]
        return bool(shown) and shown["window_start_ms"] == feed.latest(shown["res"]).window_start_ms

    poll(on_newest, timeout_s=120, what="the page on the newest window after the reconnect")
    st, rows, frame = drawn(page, feed)
    assert rows == expected_rows(frame, "population.persons", st["bbox"])


def district_of(districts: list[District], lat: float, lng: float) -> str | None:
    """The district whose polygon holds the point (even-odd ray casting, as the page does)."""
    for d in districts:
        inside = False
        ring = d.polygon
        for (xi, yi), (xj, yj) in zip(ring, [ring[-1], *ring[:-1]], strict=True):
            if (yi > lat) != (yj > lat) and lng < (xj - xi) * (lat - yi) / (yj - yi) + xi:
                inside = not inside
        if inside:
            return d.name
    return None


def text_of(page: Any, selector: str) -> str:
    text: str = page.inner_text(selector)
    return text


def test_operator_reads_places_privacy_and_headline_figures(page: Any, feed: Feed) -> None:
    coarsest = min(feed.settings.window.resolutions)
    show_window(page, window_with_people(feed, coarsest))
    _, rows, frame = drawn(page, feed)
    districts = load_city(feed.settings.generator.city_file).districts
    names = [d.name for d in districts]
    # the privacy panel says in words what k is, k taken from the manifest the gateway serves
    k = feed.get_json("privacy/manifest")["k"]
    page.wait_for_function(
        f"() => document.querySelector('#panel-privacy')?.innerText.includes('at least {k} people')",
        timeout=30_000,
    )
    assert page.locator("#panel-privacy details").count() == 1, "the manifest's details are not folded away"
    assert not page.eval_on_selector("#panel-privacy details", "d => d.open")
    # busiest places are named by district, not by H3 id
    busiest = text_of(page, "#panel-busiest")
    assert any(name in busiest for name in names), f"no district name in the busiest panel: {busiest!r}"
    assert not any(cell in busiest for cell in frame.cells), "the busiest panel still shows H3 ids"
    # people present = the sum of the window's released coarsest cells (the gateway's totals route)
    released = [v for s in frame.cells.values() if (v := s.get("population.persons")) is not None]
    expected = f"{round(sum(released)):,}"
    selector = "#headline .figure[data-key='population.persons'] .figure-value"
    page.wait_for_function(
        f"() => document.querySelector({json.dumps(selector)})?.textContent === {json.dumps(expected)}",
        timeout=30_000,
    )
    figures = dict(
        page.eval_on_selector_all(
            "#headline .figure",
            "els => els.map(e => [e.dataset.key, e.querySelector('.figure-value').textContent])",
        )
    )
    # every figure whose statistic the shown window released has a value (a minute after the feed
    # ended has no active persons: its figure may say "–")
    shown = {k for s in frame.cells.values() for k, v in s.items() if v is not None and "|" not in k}
    assert len(figures) >= 3 and "payments.amount_cny" in shown, f"headline figures: {figures}"
    assert all(v and v != "–" for k, v in figures.items() if k in shown), f"headline figures: {figures}"
    # each panel and the legend say the window their layer covers: people present the minute, flows
    # (and spend) the longer window the minute shows
    offset = load_city(feed.settings.generator.city_file).utc_offset_h
    flows_title = "document.querySelector('#panel-flows h3')?.textContent"
    label = json.dumps(span_text(frame, "flows", offset))
    page.wait_for_function(f"() => {flows_title}?.endsWith({label})", timeout=30_000)
    assert text_of(page, ".legend-title").endswith(span_text(frame, "population", offset))
    assert frame.spans["flows"][1] - frame.spans["flows"][0] == feed.settings.window.flows_window_s * 1000
    # top flows: district names when the window released a flow in view, else says there is none
    flows = text_of(page, "#panel-flows")
    if any(f["persons"] is not None for f in page.evaluate("() => __cityscreen.frames.shown.flows")):
        assert "→" in flows or "within" in flows, f"top flows without district names: {flows!r}"
        assert not any(cell in flows for cell in frame.cells)
    else:
        assert "No flow large enough" in flows
    # hover a released cell that lies in a district and is not under a panel: the tooltip names it
    target = None
    for cell, value in rows.items():
        lat, lng = h3.cell_to_latlng(cell)
        name = district_of(districts, lat, lng)
        if value is None or name is None:
            continue
        point = page.evaluate(
            """([lng, lat]) => {
              const p = __cityscreen.map.project([lng, lat]);
              const box = document.getElementById('map').getBoundingClientRect();
              const [x, y] = [p.x + box.left, p.y + box.top];
              const hit = document.elementFromPoint(x, y);
              return hit && document.getElementById('map').contains(hit) ? [x, y] : null;
            }""",
            [lng, lat],
        )
        if point:
            target = (cell, value, name, point)
            break
    assert target is not None, "no released cell inside a district is visible clear of the panels"
    cell, value, name, (x, y) = target
    page.mouse.move(x, y)
    page.wait_for_selector("#tooltip:not([hidden])", timeout=30_000)
    subtitle = "document.querySelector('#tooltip .tooltip-subtitle')?.textContent"
    page.wait_for_function(f"() => {subtitle}?.includes({json.dumps(cell)})", timeout=30_000)
    title = text_of(page, "#tooltip .tooltip-title")
    assert name in title, f"the tooltip of a cell in {name} reads {title!r}"
    assert f"{round(value):,} persons" in text_of(page, "#tooltip"), "the tooltip's count is not the frame's"
    # its breakdown arrives, each part released or said to be hidden
    page.wait_for_function("() => document.querySelector('#tooltip .tooltip-section')", timeout=30_000)
