"""The benchmarks' arithmetic: result JSON shape, ratios against the targets, percentiles, lag flatness."""

from __future__ import annotations

import json

import pytest

from services.bench.report import (
    TARGET_OURS_EPS,
    TARGET_OURS_PER_LIMIT,
    TARGET_OURS_PER_PEER,
    checks,
    event_delays_ms,
    lag_is_flat,
    percentile,
    pipeline_result,
    rate_eps,
    second_half,
    slope_per_s,
    summary_lines,
)


def make_result(limit_eps: float = 400_000.0, peer_eps: float = 5_000.0, ours_eps: float = 250_000.0,
                limit_batched_eps: float = 1_000_000.0, **extra: object) -> dict[str, object]:  # fmt: skip
    return pipeline_result(limit_eps, peer_eps, ours_eps, limit_batched_eps=limit_batched_eps, **extra)


def test_result_starts_with_exactly_the_three_rates_and_is_json() -> None:
    doc = make_result(events=2_000_000)
    assert list(doc)[:3] == ["limit_eps", "peer_eps", "ours_eps"]
    assert json.loads(json.dumps(doc)) == doc
    assert doc["events"] == 2_000_000
    assert doc["targets"] == {
        "ours_eps": TARGET_OURS_EPS,
        "ours_per_peer": TARGET_OURS_PER_PEER,
        "ours_per_limit": TARGET_OURS_PER_LIMIT,
    }


def test_ratios_are_ours_over_peer_and_limit() -> None:
    doc = make_result(limit_eps=400_000, peer_eps=5_000, ours_eps=250_000, limit_batched_eps=1_000_000)
    assert doc["ratios"] == {"ours_per_peer": 50.0, "ours_per_limit": 0.625, "ours_per_limit_batched": 0.25}
    assert doc["limit_batched_eps"] == 1_000_000
    assert doc["passed_batched_limit"] is False
    assert make_result(ours_eps=500_000, limit_batched_eps=1_000_000)["passed_batched_limit"] is True


@pytest.mark.parametrize(
    ("limit", "peer", "ours", "passed"),
    [
        (400_000, 5_000, 250_000, {"ours_eps": True, "ours/peer": True, "ours/limit": True}),
        (400_000, 5_000, 150_000, {"ours_eps": False, "ours/peer": True, "ours/limit": False}),
        (300_000, 20_000, 200_000, {"ours_eps": True, "ours/peer": False, "ours/limit": True}),
        (500_000, 10_000, 200_000, {"ours_eps": True, "ours/peer": True, "ours/limit": False}),
    ],
)
def test_each_target_passes_at_or_above_and_misses_below(
    limit: float, peer: float, ours: float, passed: dict[str, bool]
) -> None:
    assert {c.name: c.passed for c in checks(limit, peer, ours)} == passed
    assert make_result(limit, peer, ours)["passed"] == passed


def test_summary_prints_pass_and_miss() -> None:
    lines = summary_lines(400_000, 5_000, 150_000, 1_000_000)
    verdicts = [line.split()[-1] for line in lines[-4:]]
    assert verdicts == ["MISS", "PASS", "MISS", "MISS"]
    assert any(line.startswith("ours/limit_b") for line in lines[-4:])


def test_a_zero_peer_gives_no_ratio_rather_than_a_crash() -> None:
    doc = make_result(peer_eps=0.0)
    assert doc["ratios"]["ours_per_peer"] is None  # type: ignore[index]
    assert rate_eps(10, 0.0) == 0.0
    assert rate_eps(10, 2.0) == 5.0


def test_percentile_interpolates_between_ranks() -> None:
    assert percentile([], 50) is None
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([0.0, 10.0], 99) == pytest.approx(9.9)
    assert percentile(list(range(101)), 99) == 99


def test_event_delays_spread_evenly_over_the_covered_span() -> None:
    delays = event_delays_ms(0, 60_000, 90_000, 4)
    assert delays == [82_500.0, 67_500.0, 52_500.0, 37_500.0]
    assert percentile(delays, 50) == 60_000.0


def test_slope_of_a_line_and_of_too_few_points() -> None:
    assert slope_per_s([(0, 5.0), (10, 25.0), (20, 45.0)]) == pytest.approx(2.0)
    assert slope_per_s([(0, 5.0)]) == 0.0


def test_second_half_is_by_time() -> None:
    samples = [(0.0, 1.0), (5.0, 2.0), (10.0, 3.0), (15.0, 4.0), (20.0, 5.0)]
    assert second_half(samples) == [(10.0, 3.0), (15.0, 4.0), (20.0, 5.0)]


WRITTEN = [(float(t), 40.0 * t) for t in range(0, 101, 5)]  # 40 records/s written


@pytest.mark.parametrize(
    ("growth_per_s", "flat"),
    [(0.0, True), (-3.0, True), (1.0, True), (1.99, True), (2.0, False), (10.0, False)],
)
def test_lag_is_flat_when_it_grows_less_than_five_percent_of_the_write_rate(
    growth_per_s: float, flat: bool
) -> None:
    # early growth (start-up) is ignored: only the second half counts
    lag = [(float(t), 5_000.0 if t < 50 else 1_000 + growth_per_s * t) for t in range(0, 101, 5)]
    assert lag_is_flat(lag, WRITTEN) is flat


def test_lag_flatness_needs_samples_and_input() -> None:
    assert lag_is_flat([], WRITTEN) is False
    assert lag_is_flat([(0.0, 1.0)], WRITTEN) is False
    idle = [(float(t), 7.0) for t in range(0, 101, 5)]
    assert lag_is_flat(idle, [(t, 100.0) for t, _ in idle]) is False  # nothing written: nothing shown
    assert slope_per_s([(1.0, 1.0), (1.0, 2.0)]) == 0.0


def test_end_to_end_result_leads_with_e2e_and_ingest_rates_and_their_ratios() -> None:
    from services.bench.report import end_to_end_lines, end_to_end_result

    doc = end_to_end_result(make_result(limit_eps=100_000.0, peer_eps=4_000.0), 210_000.0, 240_000.0)
    assert list(doc)[:5] == ["e2e_eps", "ingest_eps", "limit_eps", "peer_eps", "ours_eps"]
    ratios = doc["ratios"]
    assert ratios["e2e_per_limit"] == 2.1 and ratios["e2e_per_peer"] == 52.5  # type: ignore[index]
    assert ratios["ingest_per_limit"] == 2.4 and "ours_per_peer" in ratios  # type: ignore[index, operator]
    assert doc["passed"]["e2e_eps"] is True and doc["passed"]["ingest_eps"] is False  # type: ignore[index]
    assert json.loads(json.dumps(doc)) == doc
    lines = end_to_end_lines(210_000.0, 240_000.0, 100_000.0, 4_000.0)
    assert any(line.startswith("ingest_eps") and line.endswith("MISS") for line in lines)


def test_provisional_delay_counts_each_event_at_the_first_now_frame_seen_that_holds_it() -> None:
    from services.bench.live import Seen, provisional_delays_ms

    # load from t=1000 to t=5000 ms; now frames seen for ticks ending 2000 (published 3000) and 6000
    # (published 6500; the tick ending 4000 was overwritten unseen, so its events count at 6000's)
    seen = Seen(first_ms=1000, end_ms=5000, now_ticks={2000: 3000, 6000: 6500})
    delays = provisional_delays_ms(seen)
    assert len(delays) == 400  # one per 10 ms of the 4 s covered
    first, rest = delays[:100], delays[100:]
    assert max(first) == pytest.approx(3000 - 1005) and min(first) == pytest.approx(3000 - 1995)
    assert max(rest) == pytest.approx(6500 - 2005) and min(rest) == pytest.approx(6500 - 4995)
    assert provisional_delays_ms(Seen()) == []
