"""The averaging attacker across time (tests/support/averaging_attacker.py), the attacker of issue 14's
item 6 for noisy releases: noise drawn afresh every window wears down when a hidden count persists (it
locates values the threshold hides), and stock noise, drawn once per true count, does not."""

from __future__ import annotations

from functools import partial

import h3
import pytest

from cityscreen.frames import Frame, FramePrivacy
from cityscreen.privacy.accountant import PERSON_LAYERS, budget
from cityscreen.privacy.gate import release_series
from cityscreen.settings import PrivacySettings
from tests.support.averaging_attacker import attack, findings
from tests.support.factories import SIBLINGS
from tests.support.night_attack import night
from tests.support.privacy_helpers import truth_of

ACTIVE = "active.persons"  # no breakdown: a hand-made frame needs no categories
A, B = SIBLINGS[:2]
PARENT = h3.cell_to_parent(A, 7)


def frames(start_ms: int, b: float, parent: float) -> list[Frame]:
    """A hidden beside B, under their parent: the estimate of A is parent - B."""
    frame = partial(Frame, v=1, window_start_ms=start_ms, window_s=60, published_ms=0,
                    privacy=FramePrivacy(10, True, 1.0))  # fmt: skip
    return [
        frame(res=8, cells={A: {ACTIVE: None}, B: {ACTIVE: b}}),
        frame(res=7, cells={PARENT: {ACTIVE: parent}}),
    ]


def truths(a: float, n: int) -> list[dict[tuple[int, str, str], float]]:
    return [{(8, A, ACTIVE): a}] * n


def test_fresh_draws_narrow_the_estimate_and_a_repeated_release_does_not() -> None:
    """Four windows of fresh noise: four estimates of A, each of variance 2 x 2 scale^2, so the standard
    error halves; the same release four times is one estimate."""
    fresh = [frames(60_000 * t, b, p) for t, (b, p) in enumerate([(50, 55), (52, 58), (49, 52), (51, 57)])]
    (claim,) = attack(fresh, truths(5, 4), noise_scale=1.5, k=10)
    assert claim.windows == 4 and claim.estimate == pytest.approx(5.0) and claim.se == pytest.approx(1.5)
    assert findings([claim], 10) == ([(8, A, ACTIVE)], [])  # 5 +- 3: located, not pinned
    repeated = [frames(60_000 * t, 50, 55) for t in range(4)]
    (claim,) = attack(repeated, truths(5, 4), noise_scale=1.5, k=10)
    assert claim.windows == 1 and claim.se == pytest.approx(3.0)
    assert findings([claim], 10) == ([], [])  # 5 +- 6: no narrower than the threshold says
    (claim,) = attack(fresh, truths(5, 4), noise_scale=0.2, k=10)
    assert findings([claim], 10) == ([(8, A, ACTIVE)], [(8, A, ACTIVE)])  # 5 +- 0.4: pinned


def test_it_averages_only_the_windows_the_truth_held_in() -> None:
    fresh = [frames(60_000 * t, b, p) for t, (b, p) in enumerate([(50, 70), (52, 58), (49, 52)])]
    changed = [{(8, A, ACTIVE): 9.0}, {(8, A, ACTIVE): 5.0}, {(8, A, ACTIVE): 5.0}]
    (claim,) = attack(fresh, changed, noise_scale=1.0, k=10)
    assert claim.windows == 2 and claim.estimate == pytest.approx(4.5)
    assert (
        attack(fresh, [{(8, A, ACTIVE): 12.0}] * 3, noise_scale=1.0, k=10) == []
    )  # at k or above: no secret


NIGHT_PERSONS, NIGHT_MINUTES = 200_000, 150
SCALE = 15.0  # the person counts' Laplace scale under stock noise (epsilon 1 over 15 families)


def _median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


@pytest.mark.heavy
def test_noise_drawn_per_count_resists_the_averaging_attacker_on_a_night() -> None:
    """A night of the `make run` city model (200,000 persons from 03:00 for two and a half hours; few
    people move). Under noise of the same scale drawn every window (DP mode at the epsilon that gives
    the person counts scale 15) the attacker narrows its estimates of hidden counts several times over;
    under stock noise, drawn once per count, it gains only the few distinct releases a quiet night
    makes, locates nothing and keeps every standard error above half the threshold."""
    stock = PrivacySettings(stock_noise=True)
    fresh = PrivacySettings(dp_enabled=True, epsilon_per_window=53 / SCALE)
    for privacy, layers in ((stock, PERSON_LAYERS), (fresh, None)):
        plan = budget(privacy, window_s=60, resolutions=[8, 7, 6], layers=layers)
        counts = [f for f in plan.families if f.name.partition(":")[2].partition(".")[0] in PERSON_LAYERS]
        assert {round(plan.scale(f), 6) for f in counts} == {SCALE}
    windows = night(NIGHT_PERSONS, NIGHT_MINUTES)
    truths = [truth_of(w) for w in windows]
    se: dict[str, list[float]] = {}
    for name, privacy in (("stock", stock), ("fresh", fresh)):
        released = [frames for _, frames in release_series(windows, privacy)]
        claims = attack(released, truths, noise_scale=SCALE, k=privacy.min_persons)
        assert len(claims) > 500, (name, len(claims))
        if name == "stock":
            assert findings(claims, privacy.min_persons) == ([], [])
        se[name] = [c.se for c in claims]
    assert min(se["stock"]) >= stock.min_persons / 2, min(se["stock"])
    assert _median(se["fresh"]) * 3 <= _median(se["stock"]), (_median(se["fresh"]), _median(se["stock"]))
