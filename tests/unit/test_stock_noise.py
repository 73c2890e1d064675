"""`privacy.stock_noise`: people present and active persons (the per-window person counts; people present
are a stock) get keyed DP noise and a noisy threshold instead of complementary suppression, so that
differencing two windows' releases stays noisy (issue 14, item 6); spend, transit and flows are gated as
in threshold mode. The noise is drawn per true count, so a count that holds keeps its noise: the
averaging attacker across time (tests/unit/test_averaging_attack.py) gains nothing from the windows."""

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
    assert m["dp"]["statistics_per_person_per_window"] == 15 and m["epsilon_per_window"] == 1.0
    assert any("complementary suppression across" in r for r in m["rules"])  # the event layers keep it
    assert any("cell key method" in r for r in m["rules"]) and "cell key" in m["dp"]["composition"]
    # drawn once per count, not per window: no per-day sum of windows to state, and no warning about one
    assert m["epsilon_per_day"] is None and "warning" not in m
    day = build_manifest(STOCK, window_s=60, resolutions=[8, 7, 6], now=NowSettings())["person_day"]
    assert day["final_rho"] is None and day["total_rho"] == day["now_rho"]


def test_a_window_of_one_kind_is_gated_in_that_kind_s_mode(window: WindowAggregate) -> None:
    """Spend, transit and flows over their own longer windows: threshold mode, byte for byte; a base
    window of people present and active persons: noise alone."""
    events = only_layers(window, REST_LAYERS)
    assert release(events, STOCK, published_ms=0) == release(events, PrivacySettings(), published_ms=0)
    counts = release(only_layers(window, PERSON_LAYERS), STOCK, published_ms=0)
    assert all(f.privacy.mechanism == "laplace" and not f.flows for f in counts)
    assert all(_is_count(key) for f in counts for values in f.cells.values() for key in values)


def test_a_count_that_holds_keeps_its_noise_and_a_changed_one_is_drawn_again() -> None:
    """Two minutes of one synthetic city: every person count whose truth is the same in both is released
    as the same number; one whose truth changed is drawn again. DP mode draws every window afresh."""
    windows = [w.aggregate for w in synthetic_windows(persons=3_000, windows=2, seed=4)]
    persons = persons_of(windows)

    def released(privacy: PrivacySettings, w: WindowAggregate) -> dict[tuple[int, str, str], float]:
        frames = release(w, privacy, published_ms=0)
        return {(f.res, cell, key): v for f in frames for cell, values in f.cells.items()
                for key, v in values.items() if _is_count(key) and v}  # fmt: skip

    def same_or_not(privacy: PrivacySettings) -> dict[bool, list[bool]]:
        """truth held -> for each count released in both minutes, whether the two numbers are equal"""
        before, after = (released(privacy, w) for w in windows)
        out: dict[bool, list[bool]] = {True: [], False: []}
        for key in before.keys() & after.keys():
            truths = [persons[(w.window_start_ms, *key)] for w in windows]
            out[truths[0] == truths[1]].append(before[key] == after[key])
        return out

    stock = same_or_not(STOCK)
    assert len(stock[True]) > 20 and all(stock[True]), stock
    assert len(stock[False]) > 100 and sum(stock[False]) < len(stock[False]) // 10, stock
    dp = same_or_not(PrivacySettings(dp_enabled=True))
    assert len(dp[True]) > 10 and sum(dp[True]) < len(dp[True]) // 2, dp
