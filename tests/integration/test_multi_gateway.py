"""Several gateways side by side on one Redis (what a load balancer spreads clients over): clients of
each receive the same frames, in the same order, as the release sink publishes them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from websockets.asyncio.client import ClientConnection, connect

from services.gateway.cli import sink_publisher
from services.gateway.testing import demo_aggregate
from services.stack import LocalStack, ManagedProcess

pytestmark = pytest.mark.integration

GATEWAYS = 3
WINDOWS = 3
RES = 6
START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z: any fixed window start; the sink does not check it


async def test_clients_of_every_gateway_receive_the_same_frames(
    stack: LocalStack,
    spawn: Callable[..., ManagedProcess],
    fresh_redis: Any,
    free_port: Callable[[], int],
) -> None:
    settings = stack.settings
    resolutions = tuple(settings.window.resolutions)
    urls, bases = [], []
    for i in range(GATEWAYS):
        gw = settings.gateway.model_copy(update={"port": free_port()})
        api = spawn("api", settings=settings.model_copy(update={"gateway": gw}), name=f"gateway-{i}")
        base = f"http://{gw.host}:{gw.port}"

        def ready(b: str = base) -> bool:
            return httpx.get(f"{b}/api/v1/health/ready").status_code == 200

        api.wait_ready(ready, timeout_s=60)
        bases.append(base)
        urls.append(f"ws://{gw.host}:{gw.port}/ws/live?token={gw.operator_tokens[0]}")

    sockets = [await connect(url) for url in urls for _ in range(2)]  # two clients on each gateway
    client = aioredis.Redis.from_url(settings.redis.url)
    publish = sink_publisher(client, settings)  # the release sink: it applies the gate
    try:
        for ws in sockets:
            await ws.send(json.dumps({"type": "subscribe", "res": RES}))
            assert json.loads(await asyncio.wait_for(ws.recv(), 30))["type"] == "waiting"
        # one window at a time: each gateway paces a client to update_hz and keeps only the latest frame
        # for a slow one, so windows released faster than that could be merged differently per client
        for i in range(WINDOWS):
            start_ms = START_MS + i * settings.window.window_s * 1000
            await publish(demo_aggregate(start_ms, persons=600, seed=i, resolutions=resolutions))
            received = await asyncio.gather(*(_next_frame(ws) for ws in sockets))
            assert {f["window_start_ms"] for f in received} == {start_ms}
            assert all(frame == received[0] for frame in received[1:])
            assert any(received[0]["cells"].values()), "the frames must carry released cells"
    finally:
        await client.aclose()
        for ws in sockets:
            await ws.close()
    # every gateway exports the pipeline's counters alike (the rules take the max over gateways)
    for base in bases:
        published = f"cityscreen_windows_published_total {float(WINDOWS)}"
        assert published in httpx.get(f"{base}/metrics").text.splitlines()


async def _next_frame(ws: ClientConnection) -> dict[str, Any]:
    """The next frame a client receives (heartbeats and other messages skipped)."""
    while True:
        message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 60))
        if message["type"] in ("frame", "snapshot"):
            return message
