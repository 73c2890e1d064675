"""`cityscreen api` (the gateway under uvicorn) and `cityscreen loadtest ws` (websocket load test)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cityscreen.settings import Settings

if TYPE_CHECKING:
    from services.gateway.loadtest import Publish

loadtest_app = typer.Typer(help="Load tests.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.command("api")(api)
    app.add_typer(loadtest_app, name="loadtest")


def api(ctx: typer.Context) -> None:
    """Run the gateway (REST, /ws/live, the web map) on CITY_GATEWAY__HOST:CITY_GATEWAY__PORT."""
    import uvicorn

    from services.gateway.app import create_app

    settings: Settings = ctx.obj
    gw = settings.gateway
    uvicorn.run(
        create_app(settings),
        host=gw.host,
        port=gw.port,
        ws_max_size=gw.max_message_bytes,  # larger client messages are closed with 1009
        ws_ping_interval=gw.heartbeat_s,
        # one frame goes to thousands of sockets: per-connection deflate would compress it thousands of times
        ws_per_message_deflate=False,
        log_level="warning",
        lifespan="on",
    )


@loadtest_app.command("ws")
def loadtest_ws(
    ctx: typer.Context,
    clients: Annotated[int, typer.Option(min=1, help="websocket clients to open")] = 1000,
    seconds: Annotated[float, typer.Option(min=1, help="how long to measure")] = 30,
    out: Annotated[Path, typer.Option(help="JSON results file")] = Path("artifacts/loadtest-ws.json"),
    url: Annotated[
        str | None, typer.Option(help="ws://host:port of a running gateway; default: start one")
    ] = None,
    publish: Annotated[bool, typer.Option(help="publish synthetic frames to Redis at --hz")] = True,
    hz: Annotated[float, typer.Option(help="synthetic frames per second")] = 1.0,
    processes: Annotated[int, typer.Option(min=1, max=16, help="client processes")] = 2,
    res: Annotated[int | None, typer.Option(help="resolution the clients subscribe to")] = None,
    persons: Annotated[
        int, typer.Option(min=10, help="persons per synthetic window (the gate's time grows with it)")
    ] = 1_000,
    client: Annotated[
        str, typer.Option(help="lean (receipt timed at the socket) | library (a cross-check)")
    ] = "lean",
    gateways: Annotated[
        int, typer.Option(min=1, max=8, help="gateway processes on one Redis; clients spread over them")
    ] = 1,
) -> None:
    """Open N websocket clients, measure delivered frames/s, delay from published_ms, and drops."""
    from cityscreen.errors import CityScreenError
    from services.gateway.loadtest import CLIENTS, LoadTestPlan, run_loadtest

    if client not in CLIENTS:
        raise CityScreenError(f"--client {client!r}: choose one of {sorted(CLIENTS)}")
    settings: Settings = ctx.obj
    plan = LoadTestPlan(
        clients=clients,
        seconds=seconds,
        out=out,
        url=url,
        publish=publish,
        hz=hz,
        processes=processes,
        res=res if res is not None else settings.window.resolutions[-1],
        persons=persons,
        client=client,
        gateways=gateways,
    )
    result = run_loadtest(settings, plan, sink_publisher)
    per_gateway = result.pop("gateways", [])
    typer.echo(" ".join(f"{k}={v}" for k, v in result.items()))
    for figures in per_gateway:
        typer.echo("  gateway " + " ".join(f"{k}={v}" for k, v in figures.items()))


def sink_publisher(redis: Any, settings: Settings) -> Publish:
    """The release sink's publish (it applies the gate); the load test has no frames topic to feed."""
    from streams.release import ReleaseSink

    async def no_frames_topic(key: bytes, value: bytes) -> None:
        return None

    return ReleaseSink(redis, no_frames_topic, settings).publish
