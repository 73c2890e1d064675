"""The exact keyed sampler: the distributions it claims, and the same value for the same node every time.

Draws are keyed, so every figure below is fixed by the secret: the statistical bounds are checked once,
for these keys, and cannot flake.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from cityscreen.privacy.exact_sampler import (
    KeyedWords,
    bernoulli_exp,
    discrete_laplace,
    keyed_discrete_gaussian,
    uniform_below,
)

N = 60_000
LABELS = [b"node-%d" % i for i in range(N)]
ROWS = np.arange(N)


def chi2(samples: np.ndarray, pmf: dict[int, float]) -> tuple[float, int]:
    """Pearson's statistic over the support points expected at least 5 times, and its degrees of freedom."""
    expected = {k: p * samples.size for k, p in pmf.items() if p * samples.size >= 5}
    values, counts = np.unique(samples, return_counts=True)
    seen = dict(zip(values.tolist(), counts.tolist(), strict=True))
    stat = sum((seen.get(k, 0) - e) ** 2 / e for k, e in expected.items())
    tail = samples.size - sum(seen.get(k, 0) for k in expected)
    tail_expected = samples.size - sum(expected.values())
    stat += (tail - tail_expected) ** 2 / max(tail_expected, 1.0)
    return stat, len(expected)


def test_uniform_below_is_uniform() -> None:
    draws = uniform_below(KeyedWords(b"u", LABELS), ROWS, np.full(N, 7))
    stat, df = chi2(draws, {k: 1 / 7 for k in range(7)})
    assert draws.min() == 0 and draws.max() == 6
    assert stat < 30, (stat, df)  # chi-square, 6-7 df: 30 is far beyond its 0.9999 quantile (about 25)


@pytest.mark.parametrize(("num", "den"), [(0, 1), (1, 2), (1, 1), (3, 1), (7, 3)])
def test_bernoulli_exp_hits_exp_minus_gamma(num: int, den: int) -> None:
    hits = bernoulli_exp(KeyedWords(b"b%d/%d" % (num, den), LABELS), ROWS, np.full(N, num), np.full(N, den))
    p = math.exp(-num / den)
    assert abs(hits.mean() - p) < 5 * math.sqrt(p * (1 - p) / N) + 1e-12


def test_discrete_laplace_matches_its_pmf() -> None:
    t = 3
    draws = discrete_laplace(KeyedWords(b"lap", LABELS), ROWS, t)
    norm = (1 - math.exp(-1 / t)) / (1 + math.exp(-1 / t))
    stat, df = chi2(draws, {k: norm * math.exp(-abs(k) / t) for k in range(-40, 41)})
    assert stat < 2.5 * df + 30, (stat, df)


@pytest.mark.parametrize(("num", "den"), [(4, 1), (1296, 1), (9, 4)])
def test_discrete_gaussian_matches_its_pmf(num: int, den: int) -> None:
    sigma2 = num / den
    draws = keyed_discrete_gaussian(b"dg", LABELS, num, den)
    support = range(-int(12 * math.sqrt(sigma2)) - 2, int(12 * math.sqrt(sigma2)) + 3)
    weights = {k: math.exp(-k * k / (2 * sigma2)) for k in support}
    total = sum(weights.values())
    stat, df = chi2(draws, {k: w / total for k, w in weights.items()})
    assert stat < 2 * df + 40, (stat, df)
    assert abs(draws.mean()) < 5 * math.sqrt(sigma2 / N)


def test_a_nodes_value_depends_only_on_secret_and_label() -> None:
    full = keyed_discrete_gaussian(b"s", LABELS[:5000], 100)
    again = keyed_discrete_gaussian(b"s", LABELS[:5000], 100)
    alone = keyed_discrete_gaussian(b"s", LABELS[1234:1240], 100)
    shuffled = keyed_discrete_gaussian(b"s", LABELS[:5000][::-1], 100)[::-1]
    other_secret = keyed_discrete_gaussian(b"t", LABELS[:5000], 100)
    assert (full == again).all() and (full[1234:1240] == alone).all() and (full == shuffled).all()
    assert (full != other_secret).mean() > 0.9


def test_rows_that_need_many_words_read_one_prefix_stable_stream() -> None:
    few = KeyedWords(b"w", LABELS[:3], words_per_row=2)
    many = KeyedWords(b"w", LABELS[:3], words_per_row=64)
    rows = np.arange(3)
    assert [few.take(rows).tolist() for _ in range(40)] == [many.take(rows).tolist() for _ in range(40)]


def test_sigma_outside_exact_range_is_refused_with_the_fix() -> None:
    with pytest.raises(ValueError, match="use whole numbers"):
        keyed_discrete_gaussian(b"s", LABELS[:2], 10**9)
