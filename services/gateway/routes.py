"""REST routes under /api/v1: frames, a cell's history, city-wide totals, the privacy manifest, the city."""

from __future__ import annotations

from typing import Annotated, Any

import h3
import msgspec
from fastapi import APIRouter, HTTPException, Query, Response, status

from cityscreen.aggregates import STATISTICS
from cityscreen.city import load_city
from cityscreen.demography import BREAKDOWN_CATEGORIES
from services.gateway import store
from services.gateway.deps import MetricsDep, OperatorDep, RedisDep, SettingsDep
from services.gateway.metrics import scrape
from services.gateway.totals import totals_series
from services.gateway.view import (
    NOW_LAYER,
    VIEW_LAYERS,
    View,
    ViewError,
    cell_history,
    make_view,
    view_frame,
    view_now,
)

router = APIRouter(prefix="/api/v1")

LayersQuery = Annotated[str | None, Query(description="comma-separated layers; default all")]
BBoxQuery = Annotated[str | None, Query(description="west,south,east,north in degrees")]
BreakdownQuery = Annotated[str | None, Query(description="a breakdown dimension, e.g. gender")]


def invalid(where: str, name: str, message: str) -> HTTPException:
    """A 422 in the shape the OpenAPI document declares (FastAPI's validation errors): a list of
    {loc, msg, type}, so clients parse every 422 alike."""
    detail = [{"loc": [where, name], "msg": message, "type": "value_error"}]
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=detail)


def parse_view(
    settings: SettingsDep, res: int, layers: str | None, bbox: str | None, breakdown: str | None
) -> View:
    try:
        return make_view(
            res,
            layers.split(",") if layers else None,
            [float(v) for v in bbox.split(",")] if bbox else None,
            breakdown or None,
            resolutions=settings.window.resolutions,
        )
    except ViewError as exc:
        raise invalid("query", exc.field, str(exc)) from exc
    except ValueError as exc:  # a bbox that is not four numbers
        raise invalid("query", "bbox", f"bbox must be four numbers west,south,east,north ({exc})") from exc


@router.get("/health", tags=["health"])
async def health() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.get("/health/ready", tags=["health"])
async def ready(redis: RedisDep, response: Response) -> dict[str, str]:
    """Readiness: Redis answers (503 otherwise)."""
    try:
        await redis.ping()
    except Exception as exc:  # any failure to reach Redis means not ready
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        return {"status": "unavailable", "redis": str(exc)}
    return {"status": "ready"}


@router.get("/config", tags=["meta"])
async def config(settings: SettingsDep) -> dict[str, Any]:
    """What the map may ask for: resolutions, layers, breakdowns and the update pacing."""
    return {
        "resolutions": settings.window.resolutions,
        "window_s": settings.window.window_s,
        "history_s": settings.redis.history_s,
        "update_hz": settings.gateway.update_hz,
        "heartbeat_s": settings.gateway.heartbeat_s,
        "layers": list(VIEW_LAYERS),
        "statistics": {layer: dict(metrics) for layer, metrics in STATISTICS.items()},
        "breakdowns": {dim: list(cats) for dim, cats in BREAKDOWN_CATEGORIES.items()},
        "data_since_ms": settings.gateway.data_since_ms,
    }


@router.get("/city", tags=["meta"])
async def city(settings: SettingsDep) -> Response:
    """The city model (outline, districts, metro lines) the map draws its offline base layer from."""
    model = load_city(settings.generator.city_file)
    return Response(msgspec.json.encode(model), media_type="application/json")


@router.get("/privacy/manifest", tags=["privacy"])
async def manifest(settings: SettingsDep, redis: RedisDep) -> dict[str, Any]:
    """The privacy manifest in force (public on purpose: it says what is released and how)."""
    return await store.manifest(redis, settings)


@router.get("/frames/latest", tags=["frames"])
async def latest(
    _: OperatorDep,
    settings: SettingsDep,
    redis: RedisDep,
    res: int,
    layers: LayersQuery = None,
    bbox: BBoxQuery = None,
    breakdown: BreakdownQuery = None,
) -> dict[str, Any]:
    """The newest released frame at `res`, cut to the layers, bounding box and breakdown asked for."""
    view = parse_view(settings, res, layers, bbox, breakdown)
    frame = await store.latest_frame(redis, res)
    if frame is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no frame released yet at res {res}")
    return view_frame(frame, view)


@router.get("/frames/now", tags=["frames"])
async def now(
    _: OperatorDep, settings: SettingsDep, redis: RedisDep, res: int, bbox: BBoxQuery = None
) -> dict[str, Any]:
    """The now layer's newest provisional tick at `res` (pane "early": people present, totals only, with
    each cell's noise sd and the day's privacy budget), cut to the bounding box: the `now` message of
    the live socket. Declared before `/frames/{window_start_ms}`, which would take "now" as a window."""
    view = parse_view(settings, res, NOW_LAYER, bbox, None)
    tick = await store.latest_now(redis, res)
    if tick is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            detail=f"no provisional frame yet at res {res}: is the now worker running? "
            "Start it with `cityscreen worker --role now`",
        )
    return {"type": "now", **view_now(tick, view)}


@router.get("/frames/windows", tags=["frames"])
async def windows(_: OperatorDep, settings: SettingsDep, redis: RedisDep, res: int) -> dict[str, Any]:
    """Window starts still kept at `res` (the last `history_s`), oldest first: the time scrubber's stops."""
    parse_view(settings, res, None, None, None)
    count = settings.redis.history_s // settings.window.window_s
    return {"res": res, "window_starts_ms": await store.recent_windows(redis, res, count)}


@router.get("/frames/{window_start_ms}", tags=["frames"])
async def frame_at(
    _: OperatorDep,
    settings: SettingsDep,
    redis: RedisDep,
    window_start_ms: int,
    res: int,
    layers: LayersQuery = None,
    bbox: BBoxQuery = None,
    breakdown: BreakdownQuery = None,
) -> dict[str, Any]:
    """One past window's frame at `res`, cut like `/frames/latest`."""
    view = parse_view(settings, res, layers, bbox, breakdown)
    frame = await store.frame_at(redis, res, window_start_ms)
    if frame is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, detail=f"window {window_start_ms} at res {res} is not kept"
        )
    return view_frame(frame, view)


@router.get("/cells/{cell}/history", tags=["frames"])
async def history(
    _: OperatorDep,
    settings: SettingsDep,
    redis: RedisDep,
    cell: str,
    windows: Annotated[int, Query(ge=1, le=1440)] = 60,
    layers: LayersQuery = None,
    breakdown: BreakdownQuery = None,
) -> dict[str, Any]:
    """The cell's stats over its last `windows` released windows, oldest first (null = suppressed)."""
    if not h3.is_valid_cell(cell):
        raise invalid("path", "cell", f"{cell!r} is not an H3 cell")
    res = h3.get_resolution(cell)
    view = parse_view(settings, res, layers, None, breakdown)
    frames = await store.recent_frames(redis, res, windows)
    return {"cell": cell, "res": res, "windows": cell_history(frames, cell, view.layers, view.breakdown)}


@router.get("/totals", tags=["frames"])
async def totals(
    _: OperatorDep,
    settings: SettingsDep,
    redis: RedisDep,
    res: Annotated[int | None, Query(description="resolution to sum; default the coarsest")] = None,
    windows: Annotated[int | None, Query(ge=1, le=1440, description="default: all kept")] = None,
) -> dict[str, Any]:
    """City-wide totals of the last `windows` released windows at `res`, oldest first: per window, each
    total statistic summed over its released cells (`totals`), how many cells it is released in
    (`released_cells`) and suppressed in (`suppressed_cells`: left out of the sum, so a total is a lower
    bound; with no released cell the sum is 0 but nothing is known)."""
    chosen = min(settings.window.resolutions) if res is None else res
    parse_view(settings, chosen, None, None, None)
    count = windows if windows is not None else settings.redis.history_s // settings.window.window_s
    frames = await store.recent_frames(redis, chosen, count)
    return {"res": chosen, "windows": totals_series(frames)}


@router.get("/metrics", tags=["health"], include_in_schema=False)
async def metrics_text(metrics: MetricsDep, redis: RedisDep) -> Response:
    return Response(await scrape(metrics, redis), media_type="text/plain; version=0.0.4")
