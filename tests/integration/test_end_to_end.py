"""End to end on the real stack and real processes: raw events produced to Kafka come out as a released
aggregate in Redis and as a frame on the gateway's /ws/live socket."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import h3
import httpx
import pytest
import redis
from aiokafka import AIOKafkaProducer
from websockets.asyncio.client import connect

from cityscreen import store_keys
from cityscreen.demography import PROVINCE_CODES
from cityscreen.events import INGEST_SIM_TOPIC, RawSim, encode_many
from cityscreen.frames import decode_frame
from cityscreen.settings import Settings
from services.stack import LocalStack, ManagedProcess
from tests.support.factories import raw_event

pytestmark = pytest.mark.integration

# Inside the bundled city's bounding box (Futian, Shenzhen).
LAT, LNG = 22.5431, 114.0579
POPULATION_KEY = "population.persons"
# Generous: measured on this 2-core box, the aggregate worker released the window about 5 min after the
# events (it should be seconds with idle_close_s=1; reported to the streams owner).
FRAME_TIMEOUT_S = 420


def make_sim(**overrides: Any) -> RawSim:
    fields: dict[str, Any] = {"event_id": uuid.uuid4().hex, "ts_ms": int(time.time() * 1000),
                              "imsi": "460001234567890", "msisdn": "8613800000000", "tower_id": "T-e2e",
                              "lat": LAT, "lng": LNG, "gender": "F", "origin": PROVINCE_CODES[0]}  # fmt: skip
    return raw_event("sim", **(fields | overrides))


def e2e_settings(stack: LocalStack, port: int) -> Settings:
    s = stack.settings
    return s.model_copy(
        update={
            # Short windows that close soon after the partition goes quiet: no minute-long wait.
            "window": s.window.model_copy(update={"window_s": 10, "grace_s": 5, "idle_close_s": 1.0}),
            "gateway": s.gateway.model_copy(update={"port": port}),
            # exact threshold mode: the frame holds exactly the persons sent (stock noise would noise them)
            "privacy": s.privacy.model_copy(update={"stock_noise": False}),
        }
    )


async def produce(bootstrap: str, events: list[RawSim]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(INGEST_SIM_TOPIC, encode_many(events))
    finally:
        await producer.stop()


async def test_events_become_a_redis_aggregate_and_a_live_frame(
    stack_factory: Callable[..., LocalStack],
    spawn: Callable[..., ManagedProcess],
    free_port: Callable[[], int],
    wait_for: Any,
) -> None:
    private = stack_factory()  # clean topics: the only events are the ones below
    settings = e2e_settings(private, free_port())
    gw = settings.gateway
    persons = settings.privacy.min_persons + 2  # enough distinct people to pass the threshold gate
    window_ms = settings.window.window_s * 1000
    window_start_ms = (int(time.time() * 1000) // window_ms - 1) * window_ms
    events = [
        make_sim(imsi=f"4600099{i:08d}", msisdn=f"86139{i:08d}", ts_ms=window_start_ms + 1000 + i)
        for i in range(persons)
    ]
    cell = h3.latlng_to_cell(LAT, LNG, settings.window.h3_res)

    workers = [
        spawn("worker", "--role", "ingest", settings=settings),
        spawn("worker", "--role", "aggregate", settings=settings),
    ]
    api = spawn("api", settings=settings)
    base = f"http://{gw.host}:{gw.port}"
    api.wait_ready(lambda: httpx.get(f"{base}/api/v1/health/ready").status_code == 200, timeout_s=60)

    url = f"ws://{gw.host}:{gw.port}/ws/live?token={gw.operator_tokens[0]}"
    async with connect(url) as ws:
        await ws.send(json.dumps({"type": "subscribe", "res": settings.window.h3_res}))
        first = json.loads(await asyncio.wait_for(ws.recv(), 30))
        assert first["type"] in ("waiting", "snapshot")

        await produce(private.bootstrap, events)

        async def next_frame_with_cell() -> dict[str, Any]:
            while True:
                message: dict[str, Any] = json.loads(await ws.recv())
                if message["type"] in ("frame", "snapshot") and cell in message.get("cells", {}):
                    return message

        try:
            live = await asyncio.wait_for(next_frame_with_cell(), FRAME_TIMEOUT_S)
        except TimeoutError:
            dead = [p for p in (*workers, api) if not p.is_alive()]
            pytest.fail(
                f"no frame with {cell} on /ws/live; dead: {[p.failure_message('died') for p in dead]}"
            )

    assert live["window_start_ms"] == window_start_ms
    assert live["cells"][cell][POPULATION_KEY] == persons

    client = redis.Redis.from_url(private.redis_url)
    try:
        stored = wait_for(
            lambda: client.get(store_keys.frame_key(settings.window.h3_res, window_start_ms)),
            what="the released frame in Redis",
        )
    finally:
        client.close()
    frame = decode_frame(stored)
    assert frame.cells[cell][POPULATION_KEY] == persons
    assert frame.privacy.min_persons == settings.privacy.min_persons
