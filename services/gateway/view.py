"""What one subscriber sees of a frame: its layers, breakdown and bounding box, encoded once per shape.

A `View` is hashable, so the fan-out encodes a frame once per distinct view rather than per client.
The output keeps the frame's meaning: a null value is suppressed, an absent cell had no data.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import h3
import msgspec

from cityscreen.aggregates import LAYERS, STATISTICS, parse_stat_key
from cityscreen.demography import BREAKDOWN_CATEGORIES
from cityscreen.frames import Frame, NowFrame

FLOWS_LAYER = "flows"
# The now layer is people present only, totals only: a view sees it when it shows this layer
NOW_LAYER = "population"
NOW_STAT = "population.persons"
PANE_FINAL = "final"  # a window's released frame
PANE_EARLY = "early"  # the now layer's provisional tick, replaced by the final frame of its window
VIEW_LAYERS: tuple[str, ...] = (*LAYERS, FLOWS_LAYER)
BREAKDOWN_DIMENSIONS: frozenset[str] = frozenset(
    dim for metrics in STATISTICS.values() for dims in metrics.values() for dim in dims
)


class BBox(msgspec.Struct, frozen=True, array_like=True):
    """West, south, east, north in degrees (the order deck.gl and MapLibre use)."""

    west: float
    south: float
    east: float
    north: float

    def contains(self, lat: float, lng: float) -> bool:
        return self.south <= lat <= self.north and self.west <= lng <= self.east


class View(msgspec.Struct, frozen=True):
    res: int
    layers: frozenset[str] = frozenset(VIEW_LAYERS)
    bbox: BBox | None = None
    breakdown: str | None = None  # a dimension, e.g. "gender"; None = totals only


class ViewError(ValueError):
    """A subscription or query the gateway cannot serve; the message says what is accepted, `field`
    which parameter it was."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


def make_view(
    res: int,
    layers: list[str] | None = None,
    bbox: list[float] | None = None,
    breakdown: str | None = None,
    *,
    resolutions: list[int],
) -> View:
    """Validate a requested view against what is released."""
    if res not in resolutions:
        raise ViewError(f"res {res} is not released; choose one of {sorted(resolutions)}", "res")
    chosen = frozenset(layers) if layers is not None else frozenset(VIEW_LAYERS)
    unknown = chosen - set(VIEW_LAYERS)
    if unknown:
        raise ViewError(f"unknown layers {sorted(unknown)}; choose from {list(VIEW_LAYERS)}", "layers")
    box = None
    if bbox is not None:
        if len(bbox) != 4:
            raise ViewError("bbox must be [west, south, east, north]", "bbox")
        box = BBox(*(float(v) for v in bbox))
        if box.west > box.east or box.south > box.north:
            raise ViewError(
                "bbox must be [west, south, east, north] with west <= east and south <= north", "bbox"
            )
    if breakdown is not None and breakdown not in BREAKDOWN_DIMENSIONS:
        raise ViewError(
            f"unknown breakdown {breakdown!r}; choose from {sorted(BREAKDOWN_DIMENSIONS)}", "breakdown"
        )
    return View(res=res, layers=chosen, bbox=box, breakdown=breakdown)


@lru_cache(maxsize=262_144)
def _center(cell: str) -> tuple[float, float]:
    lat, lng = h3.cell_to_latlng(cell)
    return lat, lng


def cell_in_bbox(cell: str, bbox: BBox | None) -> bool:
    """A cell is in view when its centre is (cheap, and a hexagon's edge is small next to a viewport)."""
    return bbox is None or bbox.contains(*_center(cell))


@lru_cache(maxsize=65_536)
def keep_stat(key: str, layers: frozenset[str], breakdown: str | None) -> bool:
    # cached: a frame repeats the same few hundred keys in every cell, and views repeat across frames
    layer, _metric, dimension, _category = parse_stat_key(key)
    return layer in layers and (dimension is None or dimension == breakdown)


def filter_cells(cells: dict[str, dict[str, float | None]], view: View) -> dict[str, dict[str, float | None]]:
    out: dict[str, dict[str, float | None]] = {}
    for cell, stats in cells.items():
        if not cell_in_bbox(cell, view.bbox):
            continue
        kept = {k: v for k, v in stats.items() if keep_stat(k, view.layers, view.breakdown)}
        if kept:
            out[cell] = kept
    return out


def view_frame(frame: Frame, view: View) -> dict[str, Any]:
    """The subscriber's part of `frame`, as a JSON-ready dict (`type` is filled in by the caller)."""
    flows = []
    if FLOWS_LAYER in view.layers:
        flows = [
            {"origin": f.origin, "dest": f.dest, "kind": f.kind, "persons": f.persons}
            for f in frame.flows
            if cell_in_bbox(f.origin, view.bbox) or cell_in_bbox(f.dest, view.bbox)
        ]
    return {
        "pane": PANE_FINAL,
        "res": frame.res,
        "window_start_ms": frame.window_start_ms,
        "window_s": frame.window_s,
        "published_ms": frame.published_ms,
        "privacy": msgspec.to_builtins(frame.privacy),
        "layers": sorted(view.layers),
        "breakdown": view.breakdown,
        "categories": list(BREAKDOWN_CATEGORIES.get(view.breakdown, ())) if view.breakdown else [],
        "cells": filter_cells(frame.cells, view),
        "flows": flows,
        "fused": {c: v for c, v in frame.fused.items() if cell_in_bbox(c, view.bbox)},
        # the window each shown layer covers: [start_ms, end_ms] (spend over 15 minutes, say)
        "spans": {layer: span for layer, span in frame.spans.items() if layer in view.layers},
    }


def shows_now(view: View) -> bool:
    return NOW_LAYER in view.layers


def view_now(now: NowFrame, view: View) -> dict[str, Any]:
    """The subscriber's part of a now frame, as a JSON-ready dict (`type` is filled in by the caller):
    its cells and noise in the view's bbox, people present totals only (the now layer has no breakdown)."""
    cells = {
        cell: {NOW_STAT: stats[NOW_STAT]}
        for cell, stats in now.cells.items()
        if NOW_STAT in stats and cell_in_bbox(cell, view.bbox)
    }
    return {
        "pane": PANE_EARLY,
        "res": now.res,
        "window_start_ms": now.window_start_ms,
        "window_s": now.window_s,
        "tick_ms": now.tick_ms,
        "published_ms": now.published_ms,
        "privacy": msgspec.to_builtins(now.privacy),
        "cells": cells,
        "noise_sd": {cell: sd for cell, sd in now.noise_sd.items() if cell_in_bbox(cell, view.bbox)},
        "budget": msgspec.to_builtins(now.budget),
    }


_ENCODER = msgspec.json.Encoder()


def encode_message(kind: str, body: dict[str, Any]) -> str:
    """One websocket/REST message: {"type": kind, ...body} as JSON text."""
    return _ENCODER.encode({"type": kind, **body}).decode()


def cell_history(
    frames: list[Frame], cell: str, layers: frozenset[str], breakdown: str | None
) -> list[dict[str, Any]]:
    """One entry per window, oldest first: the cell's stats (empty when the cell had no data)."""
    out = []
    for frame in sorted(frames, key=lambda f: f.window_start_ms):
        stats = frame.cells.get(cell, {})
        out.append(
            {
                "window_start_ms": frame.window_start_ms,
                "window_s": frame.window_s,
                "spans": {layer: span for layer, span in frame.spans.items() if layer in layers},
                "stats": {k: v for k, v in stats.items() if keep_stat(k, layers, breakdown)},
            }
        )
    return out
