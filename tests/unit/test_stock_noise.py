"""`privacy.stock_noise`: people present and active persons (the per-window person counts; people present
are a stock) get keyed DP noise and a noisy threshold instead of complementary suppression, so that
differencing two windows' releases stays noisy (issue 14, item 6); spend, transit and flows are gated as
in threshold mode. No attack test of noisy releases across time yet (docs/privacy.md, "Noise on the
stock")."""

from __future__ import annotations

import pytest

from cityscreen.aggregates import WindowAggregate
from cityscreen.privacy import build_manifest, release
from cityscreen.privacy.accountant import PERSON_LAYERS, budget
from cityscreen.privacy.gate import REST_LAYERS, only_layers
from cityscreen.privacy.synthetic import synthetic_windows
from cityscreen.settings import NowSettings, PrivacySettings
from tests.support.interval_attacker import persons_of

STOCK = PrivacySettings(stock_noise=True)


@pytest.fixture(scope="module")
def window() -> WindowAggregate:
    return synthetic_windows(persons=3_000, windows=1, seed=1)[0].aggregate


def _is_count(key: str) -> bool:
    return key.partition(".")[0] in PERSON_LAYERS


def test_the_person_counts_carry_noise_and_the_event_layers_are_gated_as_in_threshold_mode(
    window: WindowAggregate,
) -> None:
    exact, noisy = release(window, PrivacySettings(), published_ms=0), release(window, STOCK, published_ms=0)
    persons = persons_of([window])
    moved = released = 0
    for e, n in zip(exact, noisy, strict=True):
        assert (
            n.privacy.dp_enabled and n.privacy.epsilon == 1.0 and n.privacy.mechanism == "laplace+threshold"
        )
        assert {c: set(v) for c, v in e.cells.items()} == {c: set(v) for c, v in n.cells.items()}
        assert e.flows == n.flows
        for cell, values in n.cells.items():
            for key, value in values.items():
                if not _is_count(key):
                    assert value == e.cells[cell][key], (cell, key)
                elif value is not None:
                    truth = persons[(window.window_start_ms, n.res, cell, key)]
                    assert truth >= 10 and value >= 10, (cell, key, truth, value)
                    released += 1
                    moved += value != truth
    assert released > 100 and moved > released // 2, (released, moved)


def test_the_person_counts_spend_the_window_budget_alone() -> None:
    plan = budget(STOCK, window_s=60, resolutions=[8, 7, 6], layers=PERSON_LAYERS)
    assert len(plan.families) == 3 * (4 + 1)  # people present: total + 3 breakdowns; active persons
    assert {plan.scale(f) for f in plan.families} == {15.0}  # sensitivity 1 / (1.0 / 15)
    m = build_manifest(STOCK, window_s=60, resolutions=[8, 7, 6])
    assert m["noised_layers"] == list(PERSON_LAYERS) and m["dp_enabled"] is False
    assert m["mechanism"] == "laplace on people counts, threshold elsewhere"
    assert m["dp"]["statistics_per_person_per_window"] == 15 and m["epsilon_per_day"] == 1440.0
    assert any("complementary suppression across" in r for r in m["rules"])  # the event layers keep it
    assert any("persists from one window to the next" in r for r in m["rules"]) and "warning" in m
    # zCDP per person-day: 1,440 windows x 15 families x (1/15)^2 / 2, each Laplace (epsilon^2 / 2)-zCDP
    assert build_manifest(STOCK, window_s=60, resolutions=[8, 7, 6], now=NowSettings())["person_day"][
        "final_rho"
    ] == pytest.approx(48.0)


def test_a_window_of_one_kind_is_gated_in_that_kind_s_mode(window: WindowAggregate) -> None:
    """Spend, transit and flows over their own longer windows: threshold mode, byte for byte; a base
    window of people present and active persons: noise alone."""
    events = only_layers(window, REST_LAYERS)
    assert release(events, STOCK, published_ms=0) == release(events, PrivacySettings(), published_ms=0)
    counts = release(only_layers(window, PERSON_LAYERS), STOCK, published_ms=0)
    assert all(f.privacy.mechanism == "laplace" and not f.flows for f in counts)
    assert all(_is_count(key) for f in counts for values in f.cells.values() for key in values)
