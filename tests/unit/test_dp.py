"""Differential privacy mode: the noise follows the configured mechanism, replays are identical, and
the accountant composes honestly."""

from __future__ import annotations

import math

import msgspec
import numpy as np
import pytest

from cityscreen.aggregates import WindowAggregate
from cityscreen.frames import encode_frame
from cityscreen.privacy import release, zcdp
from cityscreen.privacy.accountant import budget, families
from cityscreen.privacy.noise import discrete_gaussian, fresh_draw, keyed_uniform, laplace, noise_rng
from cityscreen.settings import PrivacySettings
from tests.support.factories import SIBLINGS, crowd, make_aggregate

N = 20_000


def keyed_laplace(scale: float, seed: str = "test-seed") -> np.ndarray:
    return np.array(
        [
            laplace(keyed_uniform(seed, draw=fresh_draw(0), res=8, cell=f"c{i}", stat="s"), scale)
            for i in range(N)
        ]
    )


def laplace_cdf(x: np.ndarray, scale: float) -> np.ndarray:
    return np.where(x < 0, 0.5 * np.exp(x / scale), 1 - 0.5 * np.exp(-x / scale))


def ks_statistic(samples: np.ndarray, cdf: np.ndarray) -> float:
    """Kolmogorov-Smirnov distance of sorted samples to the model CDF evaluated at them."""
    n = len(samples)
    upper = np.arange(1, n + 1) / n - cdf
    lower = cdf - np.arange(0, n) / n
    return float(max(upper.max(), lower.max()))


KS_CRITICAL = 1.95 / math.sqrt(N)  # alpha = 0.001


def test_keyed_laplace_noise_matches_the_mechanism() -> None:
    x = np.sort(keyed_laplace(3.0))
    assert ks_statistic(x, laplace_cdf(x, 3.0)) < KS_CRITICAL
    # the same test rejects a wrong scale, so it can fail
    assert ks_statistic(x, laplace_cdf(x, 3.6)) > KS_CRITICAL


def dgauss_cdf(values: np.ndarray, sigma: float) -> np.ndarray:
    support = np.arange(-int(12 * sigma) - 1, int(12 * sigma) + 2)
    pmf = np.exp(-(support**2) / (2 * sigma * sigma))
    cdf = np.cumsum(pmf / pmf.sum())
    return cdf[np.searchsorted(support, values)]


def test_discrete_gaussian_noise_matches_the_mechanism() -> None:
    sigma = 4.0
    x = np.sort(
        np.array(
            [
                discrete_gaussian(noise_rng("s", draw=fresh_draw(0), res=8, cell=f"c{i}", stat="t"), sigma)
                for i in range(N)
            ]
        )
    )
    # for integers, compare the empirical CDF just after each value with the model CDF there
    values, counts = np.unique(x, return_counts=True)
    gap = np.abs(np.cumsum(counts) / N - dgauss_cdf(values, sigma)).max()
    assert gap < KS_CRITICAL
    assert np.abs(np.cumsum(counts) / N - dgauss_cdf(values, sigma * 1.2)).max() > KS_CRITICAL
    assert abs(x.var() - sigma**2) < 0.1 * sigma**2


def busy_city(window_start_ms: int = 1_700_000_000_000) -> WindowAggregate:
    return make_aggregate(
        {c: crowd(200) + crowd(150, "M", "45-54", "east") for c in SIBLINGS}, window_start_ms=window_start_ms
    )


def test_released_noise_is_the_configured_laplace() -> None:
    privacy = PrivacySettings(dp_enabled=True, epsilon_per_window=10.0)
    plan = budget(privacy, window_s=60, resolutions=[8, 7, 6])
    scale = plan.scale(next(f for f in plan.families if f.name == "r8:population.persons"))
    noise = []
    for w in range(400):
        agg = busy_city(1_700_000_000_000 + w * 60_000)
        frame = release(agg, privacy, published_ms=0)[0]
        noise += [frame.cells[c]["population.persons"] - 350 for c in SIBLINGS]  # type: ignore[operator]
    x = np.sort(np.array(noise))
    # counts are rounded after noise (post-processing): model P(round(X) <= j) = F(j + 0.5)
    values, counts = np.unique(x, return_counts=True)
    gap = np.abs(np.cumsum(counts) / len(x) - laplace_cdf(values + 0.5, scale)).max()
    assert gap < 1.95 / math.sqrt(len(x))


def test_replay_gives_identical_frames_and_rereading_cannot_average_noise() -> None:
    privacy = PrivacySettings(dp_enabled=True)
    first = [encode_frame(f) for f in release(busy_city(), privacy, published_ms=7)]
    again = [encode_frame(f) for f in release(busy_city(), privacy, published_ms=7)]
    assert first == again
    other = [
        encode_frame(f)
        for f in release(busy_city(), privacy.model_copy(update={"dp_seed": "x"}), published_ms=7)
    ]
    assert other != first  # the noise depends on the secret seed


def test_dp_frames_declare_the_mechanism_and_epsilon() -> None:
    for mechanism in ("laplace", "discrete_gaussian"):
        privacy = PrivacySettings(dp_enabled=True, dp_mechanism=mechanism, epsilon_per_window=2.0)
        frame = release(busy_city(), privacy, published_ms=0)[0]
        assert frame.privacy.dp_enabled and frame.privacy.mechanism == mechanism
        assert frame.privacy.epsilon == 2.0


@pytest.mark.parametrize("value", [3, 9])
def test_small_values_stay_suppressed_under_dp(value: int) -> None:
    frame = release(
        make_aggregate({SIBLINGS[0]: crowd(value)}), PrivacySettings(dp_enabled=True), published_ms=0
    )[0]
    assert frame.cells[SIBLINGS[0]]["population.persons"] is None


def test_accountant_composes_every_statistic_a_person_touches() -> None:
    privacy = PrivacySettings(dp_enabled=True, epsilon_per_window=1.0)
    plan = budget(privacy, window_s=60, resolutions=[8, 7, 6])
    # per resolution: population total + 3 breakdowns, the active total; payments and transit: 2 metrics
    # x (total + 2); plus the two flow kinds
    assert len(families([8, 7, 6], privacy)) == 3 * (4 + 1 + 6 + 6) + 2
    assert plan.epsilon_per_family * len(plan.families) == pytest.approx(1.0)
    assert plan.windows_per_day == 1440
    assert plan.epsilon_per_day == pytest.approx(1440.0)
    active = next(f for f in plan.families if f.name == "r8:active.persons")
    assert active.sensitivity == 1.0  # one cell per person per window, like people present
    amount = next(f for f in plan.families if f.name == "r8:payments.amount_cny")
    assert amount.sensitivity == privacy.max_contributions_per_window * privacy.max_amount_cny


def test_gaussian_accounting_round_trips_and_composes_sublinearly() -> None:
    assert zcdp.epsilon(zcdp.rho_for_epsilon(1.0, 1e-6), 1e-6) == pytest.approx(1.0)
    plan = budget(
        PrivacySettings(dp_enabled=True, dp_mechanism="discrete_gaussian"), window_s=60, resolutions=[8, 7, 6]
    )
    assert 1.0 < plan.epsilon_per_day < 1440.0
    assert msgspec.json.encode(plan.epsilon_per_day)
