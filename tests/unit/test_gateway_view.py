"""Cutting a frame down to one subscriber's view."""

import json
from typing import Any

import pytest

from services.gateway.testing import demo_cells, make_frame
from services.gateway.view import (
    BBox,
    ViewError,
    cell_history,
    cell_in_bbox,
    encode_message,
    keep_stat,
    make_view,
    view_frame,
)

RESOLUTIONS = [8, 7, 6]
ALL = frozenset({"population", "payments", "transit", "flows"})


@pytest.mark.parametrize(
    ("key", "layers", "breakdown", "kept"),
    [
        ("population.persons", ALL, None, True),
        ("population.persons|gender=F", ALL, None, False),
        ("population.persons|gender=F", ALL, "gender", True),
        ("population.persons|age_band=25-34", ALL, "gender", False),
        ("payments.count", frozenset({"population"}), None, False),
    ],
)
def test_keep_stat(key: str, layers: frozenset[str], breakdown: str | None, kept: bool) -> None:
    assert keep_stat(key, layers, breakdown) is kept


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"res": 9}, "not released"),
        ({"res": 7, "layers": ["weather"]}, "unknown layers"),
        ({"res": 7, "bbox": [1, 2, 3]}, "bbox"),
        ({"res": 7, "bbox": [5, 0, 1, 1]}, "west <= east"),
        ({"res": 7, "breakdown": "shoe_size"}, "unknown breakdown"),
    ],
)
def test_make_view_rejects(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ViewError, match=match):
        make_view(**kwargs, resolutions=RESOLUTIONS)


def test_view_keeps_null_as_suppressed_and_drops_other_layers() -> None:
    frame = make_frame()
    suppressed_cell = demo_cells(7, rings=1)[1]
    out = view_frame(frame, make_view(7, ["population"], resolutions=RESOLUTIONS))
    assert out["cells"][suppressed_cell] == {"population.persons": None}
    assert all(k.startswith("population.") and "|" not in k for s in out["cells"].values() for k in s)
    assert out["flows"] == []


def test_view_with_breakdown_and_flows() -> None:
    frame = make_frame()
    first = demo_cells(7, rings=1)[0]
    out = view_frame(
        frame, make_view(7, ["population", "flows"], breakdown="gender", resolutions=RESOLUTIONS)
    )
    assert out["cells"][first]["population.persons|gender=F"] == 22.0
    assert out["categories"] == ["F", "M"]
    assert len(out["flows"]) == 1 and out["flows"][0]["persons"] == 14.0


def test_bbox_excludes_cells_outside() -> None:
    frame = make_frame()
    far_away = make_view(7, bbox=[0.0, 0.0, 1.0, 1.0], resolutions=RESOLUTIONS)
    out = view_frame(frame, far_away)
    assert out["cells"] == {} and out["flows"] == []
    around = make_view(7, bbox=[113.9, 22.4, 114.2, 22.7], resolutions=RESOLUTIONS)
    assert set(view_frame(frame, around)["cells"]) == set(frame.cells)


def test_cell_in_bbox_without_bbox_is_true() -> None:
    cell = demo_cells(7, rings=0)[0]
    assert cell_in_bbox(cell, None)
    assert not cell_in_bbox(cell, BBox(0, 0, 1, 1))


def test_encode_message_is_json_with_type() -> None:
    text = encode_message("frame", {"res": 7})
    assert json.loads(text) == {"type": "frame", "res": 7}
    assert text.startswith('{"type":"frame"')  # the sender's pacing relies on this prefix


def test_cell_history_orders_windows_and_marks_absent_as_empty() -> None:
    first = demo_cells(7, rings=1)[0]
    older = make_frame(window_start_ms=1_000, cells={})
    newer = make_frame(window_start_ms=61_000)
    out = cell_history([newer, older], first, ALL, None)
    assert [w["window_start_ms"] for w in out] == [1_000, 61_000]
    assert out[0]["stats"] == {}
    assert out[1]["stats"]["population.persons"] == 40.0
