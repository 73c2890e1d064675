"""Fused indicators come only from released values; a suppressed input means no indicator."""

from __future__ import annotations

import pytest

from cityscreen.fused import fused_indicators
from tests.support.factories import make_frame


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
    now: dict[str, float | None], before: dict[str, float | None] | None, expected: dict[str, float]
) -> None:
    prev = make_frame(cells={"c": before}, window_start_ms=0, res=8) if before is not None else None
    out = fused_indicators(make_frame(cells={"c": now}, window_start_ms=60_000, res=8), prev)
    assert out.get("c", {}) == expected
