"""`cityscreen loadtest ws`: N real websocket clients against a gateway with frames flowing at a set rate.

Delay is measured from a frame's `published_ms` (stamped by the release sink once the frame is gated
and complete, just before it is stored and announced) to the moment a client's event loop receives its
bytes. Drops are frames published during the measurement that a client never received (conflation or
loss). Clients run in several processes so the measuring side does not become the bottleneck; each raises
its open-file limit. The clients are real websocket connections (handshake, masking, pings answered) on a
lean protocol (`services.gateway.wsclient`), so a process of thousands measures the gateway, not itself.

Frames are released, not written: the CLI injects a publisher (the release sink, which applies the gate)
and this module hands it seeded synthetic `WindowAggregate`s, so `published_ms` is stamped by the sink.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import redis.asyncio as aioredis

from cityscreen.aggregates import WindowAggregate
from cityscreen.errors import CityScreenError
from cityscreen.frames import Frame
from cityscreen.settings import Settings, to_env
from services.gateway import wsclient
from services.gateway.auth import WS_SUBPROTOCOL
from services.gateway.testing import demo_aggregate, redis_server
from services.stack.ports import free_port

CONNECT_CONCURRENCY = 200  # handshakes in flight per process: stays under the listen backlog
GRACE_S = 3.0  # how long clients keep listening after the window for frames still in flight

Publish = Callable[[WindowAggregate], Awaitable[list[Frame]]]  # the release sink's publish
# (redis client, settings) -> publish: injected by the CLI, since this library must not import streams
MakePublisher = Callable[[aioredis.Redis, Settings], Publish]


@dataclass(frozen=True)
class LoadTestPlan:
    clients: int
    seconds: float
    out: Path
    url: str | None = None
    publish: bool = True
    hz: float = 1.0
    processes: int = 2
    res: int = 6
    layers: tuple[str, ...] = ("population",)
    persons: int = 1_000  # per synthetic window: the gate's time per window grows with it
    client: str = "lean"  # "lean" (wsclient) or "library" (the websockets library, a cross-check)
    gateways: int = 1  # gateway processes started on one Redis; client processes spread over them


class _Stamp(msgspec.Struct):
    type: str
    published_ms: int = 0


def raise_fd_limit(wanted: int) -> int:
    """Raise the soft open-files limit towards `wanted` (capped by the hard limit); returns the new soft."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(max(soft, wanted), hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return target


def summarize(
    delays_ms: list[float], *, clients: int, seconds: float, published: int, delivered: int
) -> dict[str, Any]:
    """The report: frames delivered per second, delay percentiles, frames never delivered."""
    arr = np.asarray(delays_ms, dtype=float)
    return {
        "clients": clients,
        "frames_per_s": round(delivered / seconds, 1),
        "p50_ms": round(float(np.percentile(arr, 50)), 1) if arr.size else None,
        "p99_ms": round(float(np.percentile(arr, 99)), 1) if arr.size else None,
        "dropped": max(0, clients * published - delivered),
        "published_frames": published,
        "delivered_frames": delivered,
        "seconds": seconds,
    }


@dataclass
class _Shared:
    """What the clients of one process share: where they connect and what they ask for, the measurement
    window once it is sent (start_s, end_s), the delays measured, the handshake limit, the count connected."""

    url: str
    token: str
    subscribe: dict[str, Any]
    window: list[float] = field(default_factory=list)
    delays: list[float] = field(default_factory=list)
    ready: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(CONNECT_CONCURRENCY))
    connected: int = 0

    def record_delay(self, published_ms: int, received_ms: float) -> None:
        """Keep a frame's delivery delay if it was published inside the measurement window."""
        if self.window and self.window[0] * 1000 <= published_ms <= self.window[1] * 1000:
            self.delays.append(received_ms - published_ms)


async def _client(shared: _Shared) -> None:
    decoder = msgspec.json.Decoder(_Stamp)

    def on_message(payload: bytes, now_s: float) -> None:
        # the receive time is taken when the event loop hands over the bytes (see wsclient)
        if payload.startswith(b'{"type":"frame"'):
            shared.record_delay(decoder.decode(payload).published_ms, now_s * 1000)

    async with shared.ready:
        ws = await wsclient.connect(shared.url, [WS_SUBPROTOCOL, f"bearer.{shared.token}"], on_message)
    shared.connected += 1
    try:
        ws.send_text(json.dumps(shared.subscribe))
        await ws.closed
    finally:
        ws.close()


async def _library_client(shared: _Shared) -> None:
    """The same client on the websockets library (`--client library`): a cross-check of the lean one.

    Its receive time is taken when its task runs, after the library's per-message work, so thousands
    per process add their own queueing to the delay.
    """
    from websockets.asyncio.client import connect
    from websockets.typing import Subprotocol

    decoder = msgspec.json.Decoder(_Stamp)
    async with shared.ready:
        ws = await connect(
            shared.url,
            subprotocols=[Subprotocol(WS_SUBPROTOCOL), Subprotocol(f"bearer.{shared.token}")],
            compression=None,
            max_size=None,
            open_timeout=60,
        )
    shared.connected += 1
    async with ws:
        await ws.send(json.dumps(shared.subscribe))
        while True:
            payload = await ws.recv(decode=False)
            now_ms = time.time() * 1000
            stamp = decoder.decode(payload)
            if stamp.type == "frame":
                shared.record_delay(stamp.published_ms, now_ms)


CLIENTS = {"lean": _client, "library": _library_client}


def _client_process(
    url: str, token: str, n: int, subscribe: dict[str, Any], conn: Any, kind: str = "lean"
) -> None:
    """Child process: open `n` clients, report when connected, record delays in the window it is sent."""
    raise_fd_limit(n + 256)

    async def main() -> None:
        shared = _Shared(url, token, subscribe)
        tasks = [asyncio.create_task(CLIENTS[kind](shared)) for _ in range(n)]
        while shared.connected < n:
            failed = [t for t in tasks if t.done() and t.exception() is not None]
            if failed:
                conn.send({"error": repr(failed[0].exception())})
                return
            await asyncio.sleep(0.1)
        conn.send({"connected": n})
        start_s, end_s = await asyncio.get_running_loop().run_in_executor(None, conn.recv)
        shared.window.extend([start_s, end_s])
        await asyncio.sleep(max(0.0, end_s + GRACE_S - time.time()))
        conn.send({"delays": shared.delays})
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(main())


@contextlib.contextmanager
def _gateway(settings: Settings) -> Iterator[str]:
    """Start `cityscreen api` on a free port; yields its ws:// URL."""
    port = free_port()
    env = {
        **os.environ,
        **to_env(settings),
        "CITY_GATEWAY__PORT": str(port),
        "CITY_GATEWAY__HOST": "127.0.0.1",
    }
    proc = subprocess.Popen([sys.executable, "-m", "services.cli", "api"], env=env)
    try:
        deadline = time.monotonic() + 30
        while True:
            ready_url = f"http://127.0.0.1:{port}/api/v1/health/ready"
            with contextlib.suppress(OSError), urllib.request.urlopen(ready_url, timeout=1) as r:
                if r.status == 200:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise CityScreenError(
                    f"the gateway did not become ready on port {port}: see its output above"
                )
            time.sleep(0.2)
        yield f"ws://127.0.0.1:{port}/ws/live"
    finally:
        proc.terminate()
        proc.wait(timeout=15)


async def _publish(
    make_publisher: MakePublisher, settings: Settings, persons: int, hz: float, stop_s: float
) -> list[int]:
    """Release synthetic windows at `hz` (on a fixed schedule) until `stop_s`; returns their published_ms."""
    client = aioredis.Redis.from_url(settings.redis.url)
    publish = make_publisher(client, settings)
    resolutions = tuple(settings.window.resolutions)
    # a few distinct windows, re-stamped: building one costs about as much as gating it
    crowds = [demo_aggregate(0, persons=persons, seed=i, resolutions=resolutions) for i in range(4)]
    published: list[int] = []
    period_s = 1.0 / hz
    next_s = time.time()
    window_ms = int(time.time() // 60 * 60_000)
    try:
        while time.time() < stop_s:
            window_ms += 60_000
            crowd = crowds[len(published) % len(crowds)]
            aggregate = msgspec.structs.replace(crowd, window_start_ms=window_ms)
            frames = await publish(aggregate)
            if frames:
                published.append(frames[0].published_ms)
            next_s += period_s
            await asyncio.sleep(max(0.0, next_s - time.time()))
    finally:
        await client.aclose()
    return published


def _redis_reachable(url: str) -> bool:
    async def ping() -> bool:
        client = aioredis.Redis.from_url(url, socket_connect_timeout=1)
        try:
            return bool(await client.ping())
        except (OSError, aioredis.ConnectionError):
            return False
        finally:
            await client.aclose()

    return asyncio.run(ping())


@dataclass
class _Clients:
    """The client processes: how many clients each opens, the gateway it connects to, its pipe."""

    share: list[int]
    targets: list[str]
    pipes: list[Connection] = field(default_factory=list)
    procs: list[BaseProcess] = field(default_factory=list)

    def join(self) -> None:
        for proc in self.procs:
            proc.join(timeout=GRACE_S + 10)
            if proc.is_alive():
                proc.terminate()


def run_loadtest(settings: Settings, plan: LoadTestPlan, make_publisher: MakePublisher) -> dict[str, Any]:
    raise_fd_limit(plan.clients + 1024)
    with contextlib.ExitStack() as stack:
        redis_url = settings.redis.url
        if plan.url is None and not _redis_reachable(redis_url):
            # no stack running: a throwaway Redis keeps the command self-contained
            redis_url = stack.enter_context(
                redis_server(Path(tempfile.mkdtemp(prefix="cityscreen-loadtest-")))
            )
        settings = settings.model_copy(update={"redis": settings.redis.model_copy(update={"url": redis_url})})
        urls = (
            [plan.url]
            if plan.url
            else [stack.enter_context(_gateway(settings)) for _ in range(plan.gateways)]
        )
        clients = _start_clients(plan, urls, settings.gateway.operator_tokens[0])
        try:
            published, delays_of = _measure(clients, plan, make_publisher, settings)
        finally:
            clients.join()

    def report(picked: list[int]) -> dict[str, Any]:
        delays = [d for i in picked for d in delays_of[i]]
        clients_n = sum(clients.share[i] for i in picked)
        return summarize(delays, clients=clients_n, seconds=plan.seconds, published=len(published),
                         delivered=len(delays))  # fmt: skip

    result = report(list(range(len(clients.share))))
    if len(urls) > 1:
        result["gateways"] = [
            {"url": u, **report([i for i, t in enumerate(clients.targets) if t == u])} for u in urls
        ]
    plan.out.parent.mkdir(parents=True, exist_ok=True)
    plan.out.write_text(json.dumps(result, indent=2) + "\n")
    return result


def _start_clients(plan: LoadTestPlan, urls: list[str], token: str) -> _Clients:
    """Spread the clients over at least one process per gateway, the processes over the gateways."""
    subscribe = {"type": "subscribe", "res": plan.res, "layers": list(plan.layers)}
    ctx = mp.get_context("spawn")
    processes = max(plan.processes, len(urls))
    clients = _Clients(
        share=[plan.clients // processes + (i < plan.clients % processes) for i in range(processes)],
        targets=[urls[i % len(urls)] for i in range(processes)],
    )
    for n, url in zip(clients.share, clients.targets, strict=True):
        parent, child = ctx.Pipe()
        proc = ctx.Process(
            target=_client_process, args=(url, token, n, subscribe, child, plan.client), daemon=True
        )
        proc.start()
        clients.pipes.append(parent)
        clients.procs.append(proc)
    return clients


def _measure(
    clients: _Clients, plan: LoadTestPlan, make_publisher: MakePublisher, settings: Settings
) -> tuple[list[int], list[list[float]]]:
    """Once every client is connected: publish for `plan.seconds` after a warm-up; returns the frames
    published inside the measurement (their published_ms) and each process's delays."""
    for p in clients.pipes:
        msg = p.recv()
        if "error" in msg:
            raise CityScreenError(f"a load-test client failed to connect: {msg['error']}")
    warmup_s = 2.0
    start_s = time.time() + warmup_s
    end_s = start_s + plan.seconds
    for p in clients.pipes:
        p.send((start_s, end_s))
    published: list[int] = []
    if plan.publish:
        published = asyncio.run(_publish(make_publisher, settings, plan.persons, plan.hz, end_s))
    delays_of = [p.recv()["delays"] for p in clients.pipes]
    return [ms for ms in published if start_s * 1000 <= ms <= end_s * 1000], delays_of
