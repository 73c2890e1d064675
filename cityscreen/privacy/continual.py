"""Continual release of running counts inside an open window: the binary tree mechanism (Dwork, Naor,
Pitassi and Rothblum 2010; Chan, Shi and Song 2011) with exact keyed discrete Gaussian node noise.

A window is cut into ticks 1..T. Node (level, index) holds the count of ticks
index * 2**level + 1 .. (index + 1) * 2**level, plus its own noise. The running value at tick t is the
sum of the at most log2(T) + 1 nodes that partition 1..t, so each release carries a few nodes' noise,
and one person's contribution in one tick enters one node per level: the sensitivity grows with the
tree's depth, not with the number of ticks. Releasing every tick therefore costs what releasing a
handful of values does, and the difference of two consecutive releases is still noisy, so differencing
ticks isolates nobody.

Node noise comes from `exact_sampler`, keyed by the stream (layer, resolution, cell, statistic, window)
and the node, so a replay or a reconnecting client sees the same values: re-reading reveals nothing new.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cityscreen.privacy.exact_sampler import keyed_discrete_gaussian

Z_90 = 1.6448536269514722  # two-sided 90% of a normal: the tooltip's interval (the noise sum is near normal)


def tree_levels(ticks: int) -> int:
    """Levels of the tree over `ticks` ticks: one node per level holds any given tick."""
    if ticks < 1:
        raise ValueError(f"a window needs at least one tick, got {ticks}: check window_s and tick_s")
    return max(1, math.ceil(math.log2(ticks)) + 1)


def dyadic_cover(tick: int) -> list[tuple[int, int]]:
    """The (level, index) nodes whose tick ranges partition 1..tick, coarsest first."""
    if tick < 1:
        raise ValueError(f"ticks are numbered from 1, got {tick}")
    nodes: list[tuple[int, int]] = []
    done = 0
    for level in range(tick.bit_length() - 1, -1, -1):
        if tick >> level & 1:
            nodes.append((level, done >> level))
            done += 1 << level
    return nodes


def node_ticks(level: int, index: int) -> range:
    """The ticks node (level, index) counts."""
    return range(index * (1 << level) + 1, (index + 1) * (1 << level) + 1)


@dataclass(frozen=True)
class TreeNoise:
    """Node noise of one kind of stream: sigma^2 = sigma2_num / sigma2_den for every node."""

    secret: bytes
    sigma2_num: int
    sigma2_den: int = 1

    def running(self, streams: Sequence[bytes], tick: int) -> np.ndarray:
        """The noise added to each stream's running value at `tick`: the sum of its cover's node noise."""
        cover = dyadic_cover(tick)
        labels = [b"%s|%d|%d" % (stream, level, index) for stream in streams for level, index in cover]
        noise = keyed_discrete_gaussian(self.secret, labels, self.sigma2_num, self.sigma2_den)
        per_stream: np.ndarray = noise.reshape(len(streams), len(cover)).sum(axis=1)
        return per_stream

    def sd(self, tick: int) -> float:
        """Standard deviation of the running value's noise at `tick` (the nodes are independent)."""
        return math.sqrt(len(dyadic_cover(tick)) * self.sigma2_num / self.sigma2_den)

    def interval_90(self, tick: int) -> float:
        """Half-width of the 90% interval a tooltip shows around a provisional value."""
        return Z_90 * self.sd(tick)


class CoverNoise:
    """`TreeNoise.running` for one fixed set of streams, tick after tick: the nodes of the current cover
    are kept, so a tick samples only the nodes new in its cover (about two on average, against up to
    17 for a day of 2 s ticks). A node that leaves the cover never returns to a later one."""

    def __init__(self, noise: TreeNoise, streams: Sequence[bytes]) -> None:
        self.noise, self.streams = noise, list(streams)
        self._nodes: dict[tuple[int, int], np.ndarray] = {}

    def running(self, tick: int) -> np.ndarray:
        cover = dyadic_cover(tick)
        kept = {node: self._nodes[node] for node in cover if node in self._nodes}
        for level, index in (node for node in cover if node not in kept):
            labels = [b"%s|%d|%d" % (stream, level, index) for stream in self.streams]
            n = self.noise
            kept[(level, index)] = keyed_discrete_gaussian(n.secret, labels, n.sigma2_num, n.sigma2_den)
        self._nodes = kept
        total: np.ndarray = np.add.reduce(list(kept.values()), axis=0, dtype=np.int64)
        return total


def running_release(
    true_running: np.ndarray, streams: Sequence[bytes], tick: int, noise: TreeNoise
) -> np.ndarray:
    """Noisy running values at `tick`: the exact running counts plus each stream's tree noise."""
    if len(streams) != len(true_running):
        raise ValueError(f"{len(true_running)} running counts for {len(streams)} streams: one each")
    noisy: np.ndarray = np.asarray(true_running, dtype=np.int64) + noise.running(streams, tick)
    return noisy


def tree_sensitivity2(levels: int, contributions: int) -> int:
    """Squared L2 sensitivity of one stream's node vector: a person adding at most `contributions` units
    to the stream within the window changes each level's nodes by at most that many units in total, so
    the sum of squared changes is at most levels * contributions^2."""
    return levels * contributions * contributions
