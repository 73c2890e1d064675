"""City-wide totals summed from released frames (the map's headline figures)."""

from services.gateway.testing import demo_cells, make_frame
from services.gateway.totals import totals_series, window_totals


def test_sums_released_totals_and_counts_suppressed_cells() -> None:
    a, b, c = demo_cells(6, rings=1)[:3]
    frame = make_frame(
        res=6,
        cells={
            a: {"population.persons": 40.0, "population.persons|gender=F": 22.0, "transit.tap_in": 5.0},
            b: {"population.persons": None, "transit.tap_in": 12.5},
            c: {"population.persons": 15.0, "payments.amount_cny": None},
        },
    )
    got = window_totals(frame)
    assert got["window_start_ms"] == frame.window_start_ms and got["window_s"] == 60
    # breakdown parts are not totals: adding them would count people twice
    assert got["totals"] == {"payments.amount_cny": 0.0, "population.persons": 55.0, "transit.tap_in": 17.5}
    assert got["released_cells"] == {"payments.amount_cny": 0, "population.persons": 2, "transit.tap_in": 2}
    assert got["suppressed_cells"] == {"payments.amount_cny": 1, "population.persons": 1, "transit.tap_in": 0}


def test_an_empty_frame_has_no_totals() -> None:
    assert window_totals(make_frame(cells={}))["totals"] == {}


def test_series_is_oldest_first() -> None:
    frames = [make_frame(window_start_ms=t) for t in (180_000, 60_000, 120_000)]
    assert [w["window_start_ms"] for w in totals_series(frames)] == [60_000, 120_000, 180_000]
