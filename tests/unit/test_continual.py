"""The binary tree mechanism: covers, sensitivity, re-read stability and differencing."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cityscreen.privacy import zcdp
from cityscreen.privacy.continual import (
    CoverNoise,
    TreeNoise,
    dyadic_cover,
    node_ticks,
    running_release,
    tree_levels,
    tree_sensitivity2,
)


@pytest.mark.parametrize("ticks", [1, 2, 3, 30, 60, 64, 100])
def test_covers_partition_every_prefix_and_each_tick_sits_in_one_node_per_level(ticks: int) -> None:
    levels = tree_levels(ticks)
    holders: dict[int, set[tuple[int, int]]] = {t: set() for t in range(1, ticks + 1)}
    for t in range(1, ticks + 1):
        cover = dyadic_cover(t)
        covered = sorted(x for node in cover for x in node_ticks(*node))
        assert covered == list(range(1, t + 1))
        assert len(cover) <= levels
        for node in cover:
            for x in node_ticks(*node):
                holders[x].add(node)
    for nodes in holders.values():  # a tick's count enters at most one node of each level
        assert len({level for level, _ in nodes}) == len(nodes) <= levels


def test_running_values_are_exact_counts_plus_keyed_noise_stable_on_reread() -> None:
    noise = TreeNoise(b"secret", 400)
    streams = [b"pop|7|cell%d|w0" % i for i in range(2000)]
    truth = np.arange(2000)
    first = running_release(truth, streams, 13, noise)
    assert (first == running_release(truth, streams, 13, noise)).all()
    assert (first[5:9] == running_release(truth[5:9], streams[5:9], 13, noise)).all()
    error = first - truth
    assert abs(error.std() - noise.sd(13)) < 0.1 * noise.sd(13)  # three nodes of sigma 20: sd about 34.6


def test_consecutive_ticks_do_not_difference_to_the_truth() -> None:
    """Between ticks 12 and 13 nobody arrived: the releases still differ by noise, not by zero."""
    noise = TreeNoise(b"secret", 400)
    streams = [b"pop|8|cell%d|w0" % i for i in range(2000)]
    truth = np.full(2000, 50)
    gap = running_release(truth, streams, 13, noise) - running_release(truth, streams, 12, noise)
    assert (gap != 0).mean() > 0.9 and gap.std() > 20


def test_accounting_of_one_tree() -> None:
    levels = tree_levels(60)
    assert levels == 7
    assert tree_sensitivity2(levels, 2) == 28
    rho = zcdp.gaussian_rho(tree_sensitivity2(levels, 1), 400)
    assert rho == pytest.approx(7 / 800)
    sigma2 = zcdp.sigma2_for_rho(7, rho)
    assert sigma2 >= 400 and zcdp.gaussian_rho(7, float(sigma2)) <= rho
    eps = zcdp.epsilon(rho * 1440, 1e-9)
    assert zcdp.rho_for_epsilon(eps, 1e-9) == pytest.approx(rho * 1440)
    assert eps == pytest.approx(rho * 1440 + 2 * math.sqrt(rho * 1440 * math.log(1e9)))


def test_bad_ticks_explain_themselves() -> None:
    with pytest.raises(ValueError, match="window_s and tick_s"):
        tree_levels(0)
    with pytest.raises(ValueError, match="numbered from 1"):
        dyadic_cover(0)


def test_cover_noise_equals_fresh_sampling_on_any_tick_sequence() -> None:
    # forward one by one, jumps, a step back and a repeat: the kept nodes never change a value
    noise = TreeNoise(b"k", 9, 2)
    streams = [b"s|a", b"s|b", b"s|c"]
    cached = CoverNoise(noise, streams)
    for tick in [1, 2, 3, 4, 7, 8, 9, 64, 65, 100, 99, 99, 1000]:
        assert np.array_equal(cached.running(tick), noise.running(streams, tick)), tick
