"""The gateway app factory: REST, the live websocket, metrics and the built web app on one port."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
from fastapi import FastAPI, Request, Response, WebSocket
from fastapi.responses import PlainTextResponse
from fastapi.staticfiles import StaticFiles

from cityscreen.settings import Settings
from services.gateway.hub import PACING_SLACK, Hub
from services.gateway.live import live_socket
from services.gateway.metrics import GatewayMetrics, scrape
from services.gateway.routes import router


def create_app(settings: Settings, redis_client: aioredis.Redis | None = None) -> FastAPI:
    """Build a gateway for `settings`; Redis comes from `settings.redis.url` unless a client is given."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = redis_client is None
        client = redis_client
        if client is None:
            # many sockets may ask for a snapshot at once: wait for a pooled connection rather than fail
            pool = aioredis.BlockingConnectionPool.from_url(
                settings.redis.url, max_connections=64, timeout=30
            )
            client = aioredis.Redis(connection_pool=pool)
        app.state.redis = client
        pacing_s = PACING_SLACK / settings.gateway.update_hz
        app.state.hub = Hub(client, min_interval_s=pacing_s, metrics=app.state.metrics)
        app.state.hub.start(settings.gateway.heartbeat_s)
        try:
            yield
        finally:
            await app.state.hub.stop()
            if owned:
                # a pool passed in is not closed by default: its sockets were left to the garbage collector
                await client.aclose(close_connection_pool=True)

    app = FastAPI(
        title="CityScreen gateway",
        version="1",
        description="Released, privacy-gated city frames over REST and a live websocket.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = GatewayMetrics()
    app.include_router(router)

    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        body = await scrape(request.app.state.metrics, request.app.state.redis)
        return Response(body, media_type="text/plain; version=0.0.4")

    @app.websocket("/ws/live")
    async def live(websocket: WebSocket) -> None:
        state = websocket.app.state
        await live_socket(websocket, state.settings, state.hub, state.metrics)

    dist = settings.gateway.web_dist
    if (dist / "index.html").is_file():
        app.mount("/", StaticFiles(directory=dist, html=True), name="web")
    else:

        @app.get("/", include_in_schema=False)
        async def not_built() -> PlainTextResponse:
            return PlainTextResponse(
                f"web app not built at {dist}: run `make setup` (or `cd web && npm run build`)"
            )

    return app
