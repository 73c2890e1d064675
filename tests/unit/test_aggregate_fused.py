"""Fused indicators come only from released values; a suppressed input means no indicator."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from cityscreen.frames import Frame, FramePrivacy
from cityscreen.fused import fused_indicators


@pytest.fixture
def make_frame() -> Callable[..., Frame]:
    def make(cells: dict[str, dict[str, float | None]], window_start_ms: int = 60_000, res: int = 8) -> Frame:
        return Frame(v=1, window_start_ms=window_start_ms, window_s=60, res=res, published_ms=0,
                     privacy=FramePrivacy(10, False, 0.0), cells=cells)  # fmt: skip

    return make


@pytest.mark.parametrize(
    ("now", "before", "expected"),
    [
        ({"population.persons": 20.0, "payments.amount_cny": 500.0}, None, {"spend_per_person_cny": 25.0}),
        ({"population.persons": None, "payments.amount_cny": 500.0}, None, {}),
        ({"population.persons": 30.0}, {"population.persons": 20.0}, {"population_change": 10.0}),
        (
            {"population.persons": 30.0, "transit.tap_in": 10.0, "transit.tap_out": 15.0},
            {"population.persons": 20.0},
            {"population_change": 10.0, "transit_net_arrivals": 5.0, "arrivals_share_of_change": 0.5},
        ),
        ({"transit.tap_in": 10.0, "transit.tap_out": None}, None, {}),
    ],
)
def test_fused_indicators(
    make_frame: Callable[..., Frame], now: dict, before: dict | None, expected: dict
) -> None:
    prev = make_frame({"c": before}, window_start_ms=0) if before is not None else None
    out = fused_indicators(make_frame({"c": now}), prev)
    assert out.get("c", {}) == expected
