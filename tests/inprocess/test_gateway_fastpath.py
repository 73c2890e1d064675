"""Under the real server (uvicorn, as `cityscreen api` runs it) frames take the pre-framed fast path.

Starlette wraps the ASGI send in middleware closures; if the gateway stopped finding uvicorn's connection
behind them, every frame would silently fall back to the per-client ASGI path (a task wake-up and several
layers per socket per frame), which is what made 5,000 clients slow. The same test drives the load
test's lean client against the real handshake.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
import uvicorn
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from cityscreen import store_keys
from services.gateway import wsclient
from services.gateway.app import create_app
from services.gateway.testing import make_frame
from services.stack.ports import free_port
from tests.support.gateway_support import write_frame
from tests.support.waiting import wait_for_async

TOKEN = "fastpath-token"
PROTOCOLS = ["cityscreen.v1", f"bearer.{TOKEN}"]
SUBSCRIBE = {"type": "subscribe", "res": 7, "layers": ["population"]}

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def served(redis_url: str, tmp_path: Path) -> AsyncIterator[tuple[Any, str]]:
    from cityscreen.settings import load_settings

    settings = load_settings(
        redis={"url": redis_url}, gateway={"operator_tokens": [TOKEN], "web_dist": tmp_path}
    )
    app = create_app(settings)
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, ws_per_message_deflate=False, log_level="warning", lifespan="on"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    await wait_for_async(lambda: server.started, what="the gateway to start")
    client = aioredis.Redis.from_url(redis_url)
    await client.flushdb()
    try:
        yield app, f"ws://127.0.0.1:{port}/ws/live"
    finally:
        await client.aclose()
        server.should_exit = True
        await task


async def listening(client: aioredis.Redis) -> bool:
    """The hub subscribes in the background at startup: a notify before that is lost."""
    return bool((await client.pubsub_numsub(store_keys.NOTIFY_CHANNEL))[0][1] >= 1)


async def subscribed(app: Any, count: int) -> None:
    await wait_for_async(
        lambda: sum(c.view is not None for c in app.state.hub.clients) >= count,
        what=f"{count} subscribed clients",
    )


async def test_frames_take_the_fast_path_to_library_and_lean_clients(
    served: tuple[Any, str], redis_url: str
) -> None:
    app, url = served
    lean_got: asyncio.Queue[bytes] = asyncio.Queue()
    lean = await wsclient.connect(url, PROTOCOLS, lambda payload, _at: lean_got.put_nowait(payload))
    lean.send_text(json.dumps(SUBSCRIBE))
    async with connect(url, subprotocols=[Subprotocol(p) for p in PROTOCOLS], compression=None) as ws:
        await ws.send(json.dumps(SUBSCRIBE))
        assert json.loads(await ws.recv())["type"] == "waiting"
        assert json.loads(await asyncio.wait_for(lean_got.get(), 10))["type"] == "waiting"
        await subscribed(app, 2)
        assert all(c.write is not None for c in app.state.hub.clients), "the fast path is off"

        writer = aioredis.Redis.from_url(redis_url)
        await wait_for_async(lambda: listening(writer), what="the hub to subscribe")
        await write_frame(writer, make_frame(window_start_ms=60_000), history_s=3600)
        await writer.aclose()

        library = json.loads(await asyncio.wait_for(ws.recv(), 10))
        by_lean = json.loads(await asyncio.wait_for(lean_got.get(), 10))
    lean.close()
    assert library["type"] == "frame" and library["window_start_ms"] == 60_000
    assert by_lean == library
    assert library["cells"] and all(k.startswith("population.") for s in library["cells"].values() for k in s)


async def test_the_lean_client_is_refused_without_a_token(served: tuple[Any, str]) -> None:
    _, url = served
    with pytest.raises(wsclient.HandshakeError, match="401"):
        await wsclient.connect(url, ["cityscreen.v1"], lambda payload, _at: None)
