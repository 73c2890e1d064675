"""The now layer's privacy budget per person-day, in zero-concentrated DP (zcdp.py).

Privacy unit: one person over one pseudonym period (a day by default). People present restart from
nobody at each period's start, when the keys rotate, so no release links a person's two periods.

What one person can change. At each resolution of `NowSettings.resolutions` the now layer releases the
running stock of every cell, a binary tree over the period's ticks (continual.py). A person's presence
track at that resolution is bounded to C = `max_changes_per_day` changes (bounded_presence.py), the
first an arrival. A tree node holds, per cell, the stock's net change over its ticks: for one person
-1 in at most one cell and +1 in at most one other (presence is 0 or 1 per cell), and only +1 in the
node holding their arrival. Only complete nodes are ever summed, n_L = ticks // 2**L of them at level
L, and at most min(C, n_L) hold a change. So one person moves a resolution's node vector by at most
sum over levels of (2 min(C, n_L) - 1) in squared L2 (`presence_sensitivity2`; a test finds a track
that reaches it), and all resolutions together by the sum: the Gaussian node noise's calibration.

Coarser resolutions are sums of the coarsest tree's noisy values: post-processing, no budget.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from cityscreen.privacy import zcdp
from cityscreen.privacy.continual import TreeNoise, dyadic_cover, tree_levels
from cityscreen.settings import NowSettings


@dataclass(frozen=True)
class NowBudget:
    """The now layer's noise and what it costs per person-day."""

    tick_s: int
    ticks_per_period: int
    levels: int
    max_changes: int
    resolutions: tuple[int, ...]
    sensitivity2: int  # squared L2 of one person's effect on every tree node of every resolution
    sigma2: Fraction  # each node's discrete Gaussian variance
    rho: float  # zCDP per person-day, as calibrated (at most the target)
    delta: float
    epsilon: float  # (epsilon, delta) per person-day implied by rho

    def tick_of(self, since_period_start_ms: int) -> int:
        """The last complete tick at this time after the period's start (0 before the first ends)."""
        return min(since_period_start_ms // (self.tick_s * 1000), self.ticks_per_period)

    def sd(self, tick: int) -> float:
        """Standard deviation of a running value's noise at `tick` (one node per cover part)."""
        return math.sqrt(len(dyadic_cover(tick)) * float(self.sigma2))

    def noise(self, secret: bytes) -> TreeNoise:
        return TreeNoise(secret, self.sigma2.numerator, self.sigma2.denominator)

    def rho_spent(self, tick: int) -> float:
        """What the trees' nodes complete by `tick` cost a person-day: the same bound as the day's, over
        the ticks so far (the budget meter; it reaches `rho` at the period's last tick)."""
        done = min(max(tick, 0), self.ticks_per_period)
        s2 = len(self.resolutions) * presence_sensitivity2(done, self.max_changes)
        return zcdp.gaussian_rho(s2, float(self.sigma2)) if s2 else 0.0


def presence_sensitivity2(ticks: int, max_changes: int) -> int:
    """Most one person's bounded presence track adds to one resolution's tree, in squared L2."""
    total, width = 0, 1
    while ticks // width:
        total += 2 * min(max_changes, ticks // width) - 1
        width *= 2
    return total


def now_budget(now: NowSettings, *, period_s: int) -> NowBudget:
    """Calibrate the node noise so that everything the now layer releases in a period costs at most
    `epsilon_per_person_day` at `delta_per_person_day`."""
    if period_s % now.tick_s:
        raise ValueError(
            f"the pseudonym period ({period_s} s) is not a whole number of ticks of {now.tick_s} s: "
            "set CITY_NOW__TICK_S to a divisor of CITY_PSEUDONYM_ROTATION_S"
        )
    ticks = period_s // now.tick_s
    levels = tree_levels(ticks)
    resolutions = tuple(sorted(set(now.resolutions), reverse=True))
    sensitivity2 = len(resolutions) * presence_sensitivity2(ticks, now.max_changes_per_day)
    target = zcdp.rho_for_epsilon(now.epsilon_per_person_day, now.delta_per_person_day)
    sigma2 = zcdp.sigma2_for_rho(sensitivity2, target)
    rho = zcdp.gaussian_rho(sensitivity2, float(sigma2))
    return NowBudget(
        tick_s=now.tick_s,
        ticks_per_period=ticks,
        levels=levels,
        max_changes=now.max_changes_per_day,
        resolutions=resolutions,
        sensitivity2=sensitivity2,
        sigma2=sigma2,
        rho=rho,
        delta=now.delta_per_person_day,
        epsilon=zcdp.epsilon(rho, now.delta_per_person_day),
    )


def day_statement(now: NowBudget, final_rho_per_day: float | None) -> dict[str, float | None]:
    """What a person-day costs: the now layer, DP mode's final layer (None: thresholds only, no DP
    statement), and both, composed by adding rho."""
    total = now.rho + (final_rho_per_day or 0.0)
    return {
        "now_rho": now.rho,
        "now_epsilon": now.epsilon,
        "final_rho": final_rho_per_day,
        "total_rho": total,
        "total_epsilon": zcdp.epsilon(total, now.delta),
        "delta": now.delta,
    }
