"""H3 binning: positions to cells at the base resolution, and cells to their coarser parents."""

from __future__ import annotations

from functools import lru_cache

import h3


@lru_cache(maxsize=262_144)
def cell_for(lat: float, lng: float, res: int) -> str:
    """The H3 cell (hex string) holding a position. Cached: towers, stations and shops repeat."""
    cell: str = h3.latlng_to_cell(lat, lng, res)
    return cell


@lru_cache(maxsize=262_144)
def cell_id_for(lat: float, lng: float, res: int) -> int:
    """The H3 cell holding a position, as its 64-bit index (what clean batches carry)."""
    return int(h3.str_to_int(cell_for(lat, lng, res)))


@lru_cache(maxsize=262_144)
def cell_name(cell_id: int) -> str:
    """The hex string of a 64-bit H3 index (frames name cells this way)."""
    return str(h3.int_to_str(cell_id))


@lru_cache(maxsize=262_144)
def parent_of(cell: str, res: int) -> str:
    """The ancestor of `cell` at the coarser resolution `res` (the cell itself at its own resolution)."""
    return cell if h3.get_resolution(cell) == res else h3.cell_to_parent(cell, res)


def resolution_of(cell: str) -> int:
    res: int = h3.get_resolution(cell)
    return res


def cell_center(cell: str) -> tuple[float, float]:
    """(lat, lng) of the cell's centre."""
    lat, lng = h3.cell_to_latlng(cell)
    return lat, lng


def is_valid_cell(cell: str) -> bool:
    return bool(h3.is_valid_cell(cell))
