"""Fault suite (issue 16): a websocket client that stops reading, beside clients that keep up.

The real gateway (`cityscreen api`) on the shared stack's Redis; frames of about 0.8 MB are written in
the release sink's layout one at a time, the next only once every fast client has been sent the last
one. The fast clients get every frame (their rate is the source's: nothing conflated away for them);
the slow one, which reads nothing after subscribing, is skipped (latest wins) instead of being queued
for, so the gateway's memory grows by far less than the frames it could not send (counts, not time).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
from collections.abc import Callable
from typing import Any

import httpx
import psutil
import pytest
import redis
import redis.asyncio as aioredis

from services.gateway.testing import synthetic_frame
from services.gateway.wsclient import client_frame
from tests.support.faults_support import LiveClient
from tests.support.gateway_support import write_frame

pytestmark = [pytest.mark.integration, pytest.mark.faults]

RES = 8
FRAMES = 40
FAST_CLIENTS = 3
FIRST_WINDOW_MS = 1_700_000_040_000
MB = 1024 * 1024


def slow_socket(host: str, port: int, token: str) -> socket.socket:
    """A websocket that subscribes and then never reads: its receive buffer is kept small, so the
    gateway's sends back up after a frame or two."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /ws/live?token={token} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    sock.sendall(client_frame(0x1, json.dumps({"type": "subscribe", "res": RES}).encode()))
    return sock


def publish(url: str, window_start_ms: int, history_s: int) -> None:
    async def run() -> None:
        client = aioredis.from_url(url)
        try:
            frame = synthetic_frame(RES, window_start_ms, rings=20)
            await write_frame(client, frame, history_s=history_s)
        finally:
            await client.aclose()

    asyncio.run(run())


def metric(base: str, name: str) -> float:
    for line in httpx.get(f"{base}/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in the gateway's metrics")


def test_a_slow_client_is_skipped_while_fast_ones_get_every_frame_and_memory_stays_flat(
    stack: Any,
    fresh_redis: redis.Redis,
    spawn: Callable[..., Any],
    free_port: Callable[[], int],
    wait_for: Callable[..., Any],
) -> None:
    s = stack.settings
    settings = s.model_copy(
        update={"gateway": s.gateway.model_copy(update={"port": free_port(), "update_hz": 10.0})}
    )
    gw = settings.gateway
    base = f"http://{gw.host}:{gw.port}"
    api = spawn("api", settings=settings, name="gateway")
    api.wait_ready(lambda: httpx.get(f"{base}/api/v1/health/ready").status_code == 200, timeout_s=60)
    windows = [FIRST_WINDOW_MS + i * 60_000 for i in range(FRAMES)]
    fast = [LiveClient(settings, RES) for _ in range(FAST_CLIENTS)]
    slow = None
    try:
        wait_for(lambda: all(c.first_message(1) for c in fast), what="the fast clients subscribed")
        slow = slow_socket(gw.host, gw.port, gw.operator_tokens[0])
        wait_for(lambda: metric(base, "cityscreen_ws_clients") == FAST_CLIENTS + 1, what="all four sockets")
        rss_mb: list[float] = []
        for i, window in enumerate(windows):
            publish(settings.redis.url, window, settings.redis.history_s)
            wait_for(lambda w=window: all(c.latest_window() == w for c in fast), timeout_s=60,
                     what=f"frame {i} at every fast client")  # fmt: skip
            rss_mb.append(psutil.Process(api.pid).memory_info().rss / MB)
        for c in fast:
            sent = [w for _, kind, w in c.messages if kind == "frame"]
            assert sent == windows, "a fast client missed frames: the slow one held it back"
        # the frames the slow client did not take are skipped, not queued: after the first few (buffers,
        # allocator warm-up) the gateway grows by far less than the 30+ MB it could not send
        unsent_mb = (FRAMES - 5) * len(json.dumps(synthetic_frame(RES, 0, rings=20).cells)) / MB
        assert rss_mb[-1] - rss_mb[4] < unsent_mb / 3, (rss_mb, unsent_mb)
    finally:
        for c in fast:
            c.close()
        if slow is not None:
            slow.close()
    # the slow socket's skipped frames are counted when it closes; no client is left behind
    wait_for(lambda: metric(base, "cityscreen_ws_clients") == 0, what="every socket forgotten")
    assert metric(base, "cityscreen_ws_frames_conflated_total") > 0
