"""The now layer on the live map (issue 15), in Debian's Chromium against the real pipeline fed live.

A private Kafka + Redis stack, the real ingest, aggregate and now workers, the gateway and the generator
in real time (a small city, so that it runs beside the others): what an operator sees after `make run`.
The page must show provisional values (hatched, from the now worker's ticks) that move on tick after
tick, drawn as the gateway sent them, with the day's privacy budget in the header. Assertions compare
what the page draws with what the now worker published, never with hard-coded numbers.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from cityscreen import store_keys
from cityscreen.frames import decode_now
from services.stack import ManagedProcess, start_stack
from services.stack.testing import isolated_settings, jar_cache_dir
from services.up import iso_utc, realtime_start_ms
from tests.integration.test_browser_map import (
    Feed,
    api_starter,
    browser,  # noqa: F401  (the module-scoped Chromium)
    opened_page,
    poll,
    spawner,
    with_gateway,
)

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.timeout(600)]

PERSONS = 20_000


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Feed]:
    logs = tmp_path_factory.mktemp("now-logs")
    children: list[ManagedProcess] = []
    private = isolated_settings(tmp_path_factory.mktemp("now-stack"))
    with start_stack(private, cache_dir=jar_cache_dir()) as running:
        settings = with_gateway(running.settings)
        run = spawner(settings, logs, children)
        client = redis.Redis.from_url(settings.redis.url)
        coarsest = min(settings.window.resolutions)
        try:
            api = api_starter(run, settings)()
            for role in ("ingest", "aggregate", "now"):
                run("worker", "--role", role)
            # as `make run` starts it: a window and its grace in the past, so the first window closes soon
            start = iso_utc(realtime_start_ms(None, settings, int(time.time() * 1000)))
            run("generate", "--realtime", "--start", start, "--persons", str(PERSONS), "--warm-s", "30",
                "--no-progress")  # fmt: skip
            poll(lambda: client.exists(store_keys.latest_frame_key(coarsest)), timeout_s=240,
                 what="a final frame at the coarsest resolution")  # fmt: skip
            poll(lambda: client.exists(store_keys.now_key(coarsest)), timeout_s=120,
                 what="a provisional frame from the now worker")  # fmt: skip
            yield Feed(settings, client, api, api_starter(run, settings))
        finally:
            for proc in reversed(children):
                proc.stop(10.0)
                print(f"--- {proc.name} (exit {proc.returncode}):\n{proc.tail()}")
            client.close()


@pytest.fixture
def page(browser: Any, live: Feed, request: pytest.FixtureRequest) -> Iterator[Any]:  # noqa: F811
    ready = "() => window.__cityscreen?.status === 'live'"
    yield from opened_page(browser, live.url, request.node.name, ready)


def provisional(page: Any) -> dict[str, Any]:
    """The page's newest now message, the hexagon rows and stripes drawn, and the budget meter."""
    got: dict[str, Any] = page.evaluate(
        """() => {
          const c = window.__cityscreen, now = c.frames.now;
          const layer = (id) => c.layers.find((la) => la.id === id);
          const meter = document.getElementById('budget');
          return {provisional: c.provisional, now, cells: layer('cells')?.data ?? [],
                  stripes: (layer('provisional-hatch')?.data ?? []).length,
                  meter: meter && !meter.hidden ? meter.textContent : null};
        }"""
    )
    return got


def test_the_map_moves_every_tick_with_provisional_values_marked_and_the_budget_live(
    page: Any, live: Feed
) -> None:
    page.wait_for_function("() => __cityscreen.provisional === true", timeout=120_000)
    first = provisional(page)
    now = first["now"]
    assert now["pane"] == "early" and now["type"] == "now"
    # the map moves on: a later tick arrives and is drawn
    page.wait_for_function(f"() => __cityscreen.frames.now?.tick_ms > {now['tick_ms']}", timeout=60_000)
    page.wait_for_timeout(300)  # let the redraw after that message finish (a render, not an assertion)
    later = provisional(page)
    shown = later["now"]
    assert shown["tick_ms"] > now["tick_ms"]
    # what is drawn as provisional is what the gateway sent for that tick, marked provisional
    sent = {c: s["population.persons"] for c, s in shown["cells"].items()}
    sent = {c: v for c, v in sent.items() if v is not None}
    drawn = {r["hex"]: r["value"] for r in later["cells"] if r.get("provisional")}
    assert drawn and drawn == sent
    assert later["stripes"] > 0, "provisional cells are drawn without their hatching"
    # the tick the page shows was published by the now worker (same values for its cells)
    data: Any = live.redis.get(store_keys.now_key(shown["res"]))
    stored = decode_now(data)
    assert stored.tick_ms >= shown["tick_ms"]
    if stored.tick_ms == shown["tick_ms"]:
        assert {c: s["population.persons"] for c, s in stored.cells.items() if c in drawn} == drawn
    # the budget meter reads the day's spend from the message
    spent = shown["budget"]["epsilon_spent"]
    cap = shown["budget"]["epsilon_per_person_day"]
    assert later["meter"] and f"{cap:.1f}" in later["meter"] and 0 < spent <= cap
