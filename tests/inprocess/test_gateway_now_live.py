"""The now layer through the gateway, against a throwaway redis-server: `now` messages on /ws/live after
the snapshot and live, cut to the view; never an older tick; a pending final frame survives a burst of
ticks; REST /frames/now."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import msgspec
import pytest
import redis
import redis.asyncio as aioredis
from fastapi.testclient import TestClient

from adapters.frame_store import put_now
from cityscreen import store_keys
from cityscreen.frames import Frame, NowFrame, encode_now
from cityscreen.settings import load_settings
from services.gateway.app import create_app
from services.gateway.conflate import LatestQueue
from services.gateway.hub import Client, Hub
from services.gateway.testing import demo_cells, make_frame, make_now_frame
from services.gateway.view import BBox, cell_in_bbox, make_view
from tests.support.gateway_support import write_frame
from tests.support.waiting import wait_for, wait_for_async

TOKEN = "now-operator-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PROTOCOLS = ["cityscreen.v1", f"bearer.{TOKEN}"]
SUBSCRIBE = {"type": "subscribe", "res": 7, "layers": ["population"]}
WEST_HALF = [113.0, 22.0, 114.05, 23.0]  # the demo ring's cells west of its centre
TICK_MS = 1_700_000_124_000

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def put(redis_url: str, store: Callable[[Frame], None]) -> Iterator[Callable[[NowFrame], None]]:
    """Store a now tick as the now worker does, once the hub listens (a notice before that is lost)."""
    sync = redis.Redis.from_url(redis_url)

    def put_tick(tick: NowFrame) -> None:
        wait_for(
            lambda: sync.pubsub_numsub(store_keys.NOW_NOTIFY_CHANNEL)[0][1] >= 1,
            what="the hub to subscribe to the now channel",
            interval_s=0.01,
        )

        async def go() -> None:
            client = aioredis.Redis.from_url(redis_url)
            await put_now(client, tick, encode_now(tick))
            await client.aclose()

        asyncio.run(go())

    yield put_tick
    sync.close()


@pytest.fixture
def client(redis_url: str, tmp_path: Path) -> Iterator[TestClient]:
    settings = load_settings(
        redis={"url": redis_url}, gateway={"operator_tokens": [TOKEN], "web_dist": tmp_path}
    )
    with TestClient(create_app(settings)) as c:
        yield c


def receive(ws: Any) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(ws.receive_text())
    return message


def subscribe_waiting(ws: Any, **overrides: Any) -> None:
    """Subscribe before anything is stored, and wait until the gateway has handled the subscription
    whole (its lookup of a current now tick included): it answers the ping after it only then."""
    ws.send_json({**SUBSCRIBE, **overrides})
    assert receive(ws) == {"type": "waiting", "res": 7}
    ws.send_json({"type": "ping"})
    assert receive(ws)["type"] == "pong"


def hub_of(client: TestClient) -> Hub:
    hub: Hub = client.app.state.hub  # type: ignore[attr-defined]
    return hub


def test_a_watcher_gets_live_now_ticks_cut_to_its_bbox(
    client: TestClient, put: Callable[[NowFrame], None]
) -> None:
    tick = make_now_frame(tick_ms=TICK_MS)
    with client.websocket_connect("/ws/live", subprotocols=PROTOCOLS) as ws:
        subscribe_waiting(ws, bbox=WEST_HALF)
        put(tick)
        now = receive(ws)
    inside = {c for c in demo_cells(7, rings=1) if cell_in_bbox(c, BBox(*WEST_HALF))}
    assert inside and inside != set(tick.cells)
    assert now["type"] == "now" and now["pane"] == "early" and now["tick_ms"] == TICK_MS
    assert set(now["cells"]) == set(now["noise_sd"]) == inside
    assert all(
        stats == {"population.persons": tick.cells[c]["population.persons"]}
        for c, stats in now["cells"].items()
    )
    assert now["budget"] == msgspec.to_builtins(tick.budget)
    assert now["privacy"] == msgspec.to_builtins(tick.privacy)
    assert (now["window_start_ms"], now["window_s"], now["published_ms"]) == (
        tick.window_start_ms,
        tick.window_s,
        tick.published_ms,
    )
    metrics = client.get("/metrics").text.splitlines()
    line = next(x for x in metrics if x.startswith("cityscreen_ws_now_frames_total "))
    assert float(line.split()[1]) >= 1


def test_a_view_without_people_present_gets_no_now(
    client: TestClient, put: Callable[[NowFrame], None]
) -> None:
    with (
        client.websocket_connect("/ws/live", subprotocols=PROTOCOLS) as spend,
        client.websocket_connect("/ws/live", subprotocols=PROTOCOLS) as people,
    ):
        subscribe_waiting(spend, layers=["payments", "flows"])
        subscribe_waiting(people)
        put(make_now_frame(tick_ms=TICK_MS))
        assert receive(people)["type"] == "now"
        # the fan-out offers a tick to every watcher in one pass: by now the other one was passed over
        spender = next(c for c in hub_of(client).clients if c.view and "population" not in c.view.layers)
        assert spender.now_tick_ms == -1 and len(spender.queue) == 0
        spend.send_json({"type": "ping"})
        assert receive(spend)["type"] == "pong"


def test_the_snapshot_is_followed_by_the_current_now(
    client: TestClient, store: Callable[[Frame], None], put: Callable[[NowFrame], None]
) -> None:
    store(make_frame(window_start_ms=TICK_MS - 180_000))
    put(make_now_frame(tick_ms=TICK_MS))
    with client.websocket_connect("/ws/live", subprotocols=PROTOCOLS) as ws:
        ws.send_json(SUBSCRIBE)
        snapshot, now = receive(ws), receive(ws)
        assert (snapshot["type"], snapshot["pane"]) == ("snapshot", "final")
        assert (now["type"], now["pane"], now["tick_ms"]) == ("now", "early", TICK_MS)
        ws.send_json({**SUBSCRIBE, "layers": ["payments"]})  # a view without the now layer: snapshot only
        assert receive(ws)["type"] == "snapshot"
        ws.send_json({"type": "ping"})
        assert receive(ws)["type"] == "pong"


def test_an_older_tick_is_never_delivered_after_a_newer_one(
    client: TestClient, redis_url: str, put: Callable[[NowFrame], None]
) -> None:
    with (
        redis.Redis.from_url(redis_url) as sync,
        client.websocket_connect("/ws/live", subprotocols=PROTOCOLS) as ws,
    ):
        subscribe_waiting(ws)
        put(make_now_frame(tick_ms=TICK_MS))
        assert receive(ws)["tick_ms"] == TICK_MS
        # a stale notice, then a restarted worker's older tick announced as new: both ignored
        older = make_now_frame(tick_ms=TICK_MS - 2000)
        sync.publish(store_keys.NOW_NOTIFY_CHANNEL, json.dumps({"res": 7, "tick_ms": TICK_MS - 4000}))
        sync.set(store_keys.now_key(7), encode_now(older))
        sync.publish(store_keys.NOW_NOTIFY_CHANNEL, json.dumps({"res": 7, "tick_ms": TICK_MS + 60_000}))
        put(make_now_frame(tick_ms=TICK_MS + 2000))
        assert receive(ws)["tick_ms"] == TICK_MS + 2000  # notices are handled in order: nothing between
    assert hub_of(client).now_in == 2


async def test_a_pending_final_frame_survives_a_burst_of_now_ticks(redis_url: str) -> None:
    """A client that reads nothing meanwhile (a one-frame queue, no sender task) ends with the final
    frame, then the newest tick: the ticks replaced each other, never the frame."""
    redis_client = aioredis.Redis.from_url(redis_url)
    await redis_client.flushdb()
    hub = Hub(redis_client)
    watcher = Client(queue=LatestQueue(1), view=make_view(7, ["population"], resolutions=[7]))
    hub.add(watcher)
    hub.start(heartbeat_s=3600)
    try:
        await wait_for_async(lambda: listening(redis_client), what="the hub to subscribe to the now channel")
        await write_frame(redis_client, make_frame(window_start_ms=TICK_MS - 180_000), history_s=3600)
        ticks = [make_now_frame(tick_ms=TICK_MS + i * 2000) for i in range(4)]
        for count, tick in enumerate(ticks, start=1):
            await put_now(redis_client, tick, encode_now(tick))
            # each tick fanned out before the next is stored, so every one reaches the client's slot
            await wait_for_async(partial(fanned_out, hub, count), what=f"tick {tick.tick_ms} fanned out")
    finally:
        await hub.stop()
        await redis_client.aclose()
    sent = [json.loads(m.text) for m in iter(watcher.queue.get_nowait, None)]
    assert [(m["type"], m.get("tick_ms")) for m in sent] == [("frame", None), ("now", ticks[-1].tick_ms)]
    assert sent[0]["pane"] == "final" and hub.frames_in == 1 and watcher.queue.dropped == 3


def fanned_out(hub: Hub, ticks: int) -> bool:
    return hub.now_in == ticks


async def listening(redis_client: aioredis.Redis) -> bool:
    return bool((await redis_client.pubsub_numsub(store_keys.NOW_NOTIFY_CHANNEL))[0][1] >= 1)


def test_rest_now_serves_the_newest_tick_or_explains_its_absence(
    client: TestClient, put: Callable[[NowFrame], None]
) -> None:
    missing = client.get("/api/v1/frames/now", params={"res": 7}, headers=AUTH)
    assert missing.status_code == 404 and "cityscreen worker --role now" in missing.json()["detail"]
    assert client.get("/api/v1/frames/now", params={"res": 7}).status_code == 401
    assert client.get("/api/v1/frames/now", params={"res": 3}, headers=AUTH).status_code == 422
    tick = make_now_frame(tick_ms=TICK_MS)
    put(tick)
    whole = client.get("/api/v1/frames/now", params={"res": 7}, headers=AUTH)
    assert whole.status_code == 200
    body = whole.json()
    assert (body["type"], body["pane"], body["tick_ms"]) == ("now", "early", TICK_MS)
    assert set(body["cells"]) == set(tick.cells)
    boxed = client.get(
        "/api/v1/frames/now", params={"res": 7, "bbox": ",".join(map(str, WEST_HALF))}, headers=AUTH
    ).json()
    assert 0 < len(boxed["cells"]) < len(body["cells"]) and set(boxed["noise_sd"]) == set(boxed["cells"])
