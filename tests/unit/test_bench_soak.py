"""The soak's arithmetic: memory and lag slopes per hour, the generator's count, events in against out."""

from __future__ import annotations

import json

import pytest

from services.bench.soak_report import (
    BYTES_PER_MB,
    event_balance,
    ingest_dead_lettered,
    lag_trend,
    load_summary,
    rss_trend,
    sent_events,
    slope_per_h,
    soak_summary,
)


def test_slope_per_h_is_the_least_squares_slope_in_hours() -> None:
    # 1 unit per minute is 60 per hour, whatever the intercept and whatever the noise around the line
    line = [(t, 5.0 + t / 60) for t in range(0, 1800, 10)]
    assert slope_per_h(line) == pytest.approx(60.0)
    noisy = [(t, v + (1 if i % 2 else -1)) for i, (t, v) in enumerate(line)]
    assert slope_per_h(noisy) == pytest.approx(60.0, rel=0.01)
    assert slope_per_h([(0.0, 1.0)]) == 0.0
    assert slope_per_h([]) == 0.0


def test_rss_trend_is_in_mb_and_flat_memory_has_no_slope() -> None:
    flat = [(float(t), 200.0 * BYTES_PER_MB) for t in range(0, 600, 10)]
    doc = rss_trend(flat)
    assert doc["first_mb"] == doc["last_mb"] == doc["max_mb"] == 200.0
    assert doc["rss_slope_mb_per_h"] == 0.0
    assert doc["samples"] == 60


def test_rss_trend_shows_a_leak_and_warm_up_apart() -> None:
    # grows 10 MB per minute for the first half (warm-up), then flat: the whole run shows growth, the
    # second half none
    samples = [(float(t), (100 + min(t, 300) / 6) * BYTES_PER_MB) for t in range(0, 601, 10)]
    doc = rss_trend(samples)
    assert doc["rss_slope_mb_per_h"] > 0
    assert doc["rss_slope_mb_per_h_second_half"] == 0.0
    assert doc["max_mb"] == 150.0
    leak = [(float(t), (100 + t / 60) * BYTES_PER_MB) for t in range(0, 601, 10)]
    assert rss_trend(leak)["rss_slope_mb_per_h_second_half"] == pytest.approx(60.0)


def test_lag_trend_reports_records_per_hour() -> None:
    growing = [(float(t), 2.0 * t) for t in range(0, 100, 5)]  # 2 records/s behind
    doc = lag_trend(growing)
    assert doc["lag_slope_records_per_h"] == pytest.approx(7200.0)
    assert doc["max_records"] == 190 and doc["last_records"] == 190
    assert lag_trend([])["samples"] == 0


def test_sent_events_reads_the_generator_summary_line() -> None:
    line = "sent 36000000 events (payment=1, sim=2) in 1800.0 s: 20,000 events/s (target 20,000/s)"
    assert sent_events(line) == 36_000_000
    assert sent_events("generator: cannot keep up") is None


def test_event_balance_is_equal_only_when_every_event_came_out() -> None:
    assert event_balance(100, 97, 3)["equal"] is True
    assert event_balance(100, 96, 3)["equal"] is False  # one lost
    assert event_balance(100, 98, 3)["equal"] is False  # one repeated
    assert event_balance(None, 0, 0)["equal"] is False  # the generator's count is unknown: not proven


def test_event_balance_says_how_many_clean_events_came_too_late_to_count() -> None:
    doc = event_balance(100, 97, 3, late_events=7)
    assert doc["equal"] is True
    assert doc["late_dead_lettered"] == 7 and doc["aggregated"] == 90


def test_ingest_dead_lettered_sums_the_reasons_only() -> None:
    stats = {"ingest.accepted": 90, "deadletter.ts_skew": 4, "deadletter.schema": 1, "records": 7}
    assert ingest_dead_lettered(stats) == 5


def test_soak_summary_has_the_slopes_by_process_and_group_and_is_json() -> None:
    rss = {"kafka": [(0.0, 1.0 * BYTES_PER_MB), (3600.0, 3.0 * BYTES_PER_MB)], "redis": []}
    lags = {"cityscreen-ingest": [(0.0, 10.0), (3600.0, 10.0)]}
    doc = soak_summary(rss, lags, event_balance(5, 5, 0), [(0.0, 1.5), (10.0, 2.5)])
    assert doc["rss_slope_mb_per_h"] == {"kafka": 2.0, "redis": 0.0}
    assert doc["lag_slope"] == {"unit": "records per hour", "cityscreen-ingest": 0.0}
    assert doc["events"]["equal"] is True  # type: ignore[index]
    assert (
        doc["load_average_1m"]
        == load_summary([(0.0, 1.5), (10.0, 2.5)])
        == {
            "samples": 2,
            "mean": 2.0,
            "max": 2.5,
        }
    )
    json.dumps(doc)


def test_soak_summary_leaves_out_the_samples_before_the_load_started() -> None:
    # memory grows while the generator builds its population, then stays flat under load
    rss = {"generator": [(0.0, 0.0), (60.0, 1000.0 * BYTES_PER_MB), (120.0, 1000.0 * BYTES_PER_MB)]}
    doc = soak_summary(rss, {}, event_balance(1, 1, 0), [(0.0, 9.0), (60.0, 1.0)], since_s=60.0)
    assert doc["rss_slope_mb_per_h"] == {"generator": 0.0}
    assert doc["load_started_s"] == 60.0
    assert doc["load_average_1m"]["max"] == 1.0  # type: ignore[index]
