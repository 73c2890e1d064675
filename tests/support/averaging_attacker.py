"""The averaging attacker across time, for noisy releases (issue 14, item 6; docs/privacy.md, "Noise on
the stock"). The interval attacker across time (temporal_attacker.py) solves exact equations; on noisy
frames it has nothing to solve. This one does what noise invites: a hidden count whose truth persists is
estimated in every window from an equation whose other terms were released (parent minus released
siblings, total minus released categories), and the estimates are averaged over the windows the truth
held in. Each estimate's variance is known from the public noise scale, so n windows of fresh noise
narrow the estimate by the square root of n. Observations that repeat byte for byte (the same released
terms) are counted once, as any reader would.

It is granted where the truth persists, the strongest form of the guess. Its claim on a hidden value
under k persons is the interval of two standard errors (95 %) around its estimate; a claim is a finding
when the interval holds the truth and is narrower than the threshold's own range (4 standard errors under
k: the value located among fewer than k whole numbers), pinned when it spans fewer than three whole
numbers. A wide interval says nothing the threshold did not: every hidden value is under k anyway.

`python -m tests.support.averaging_attacker [PERSONS] [MINUTES]` runs it on a night of the `make run`
city model (docs/privacy.md, "Noise on the stock"): per run length, the standard errors it reaches
under noise per window (DP mode at the person counts' scale) and under stock noise.
"""

from __future__ import annotations

import argparse
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from cityscreen.frames import Frame
from cityscreen.privacy.accountant import PERSON_LAYERS
from tests.support.privacy_helpers import VarKey, _equations

Observation = tuple[tuple[float, ...], float, float]  # (released terms, estimate, variance)


@dataclass(frozen=True)
class Claim:
    key: VarKey
    truth: float
    estimate: float
    se: float
    windows: int  # distinct observations averaged

    @property
    def lo(self) -> float:
        return self.estimate - 2 * self.se

    @property
    def hi(self) -> float:
        return self.estimate + 2 * self.se

    def holds(self) -> bool:
        return self.lo <= self.truth <= self.hi

    def located(self, k: int) -> bool:
        return 4 * self.se < k and self.holds()

    def pinned(self) -> bool:
        return 4 * self.se < 3 and self.holds()


def observations(frames: list[Frame], noise_var: float) -> dict[VarKey, list[Observation]]:
    """Per hidden person count, the estimates one window's frames give: every equation of the layout
    whose other terms were all released."""
    known, eqs = _equations(frames)
    out: dict[VarKey, list[Observation]] = defaultdict(list)
    for eq in eqs:
        hidden = [(v, c) for v, c in eq if known.get(v) is None]
        if len(hidden) != 1 or hidden[0][0][2].partition(".")[0] not in PERSON_LAYERS:
            continue
        key, coeff = hidden[0]
        terms = [(v, c) for v, c in eq if v != key]
        released = tuple(float(known[v] or 0.0) for v, _ in terms)
        estimate = -sum(c * x for (_, c), x in zip(terms, released, strict=True)) / coeff
        variance = sum(c * c for _, c in terms) * noise_var / (coeff * coeff)
        out[key].append((released, estimate, variance))
    return out


def attack(
    frames: Sequence[list[Frame]], truths: Sequence[dict[VarKey, float]], *, noise_scale: float, k: int
) -> list[Claim]:
    """What the attacker claims of the last window's hidden person counts under k persons, averaging
    over the run of windows before it that the truth held in (`truths`: each window's, as `truth_of`
    in privacy_helpers gives it)."""
    seen = [observations(f, 2 * noise_scale**2) for f in frames]  # the Laplace variance
    claims = []
    for key, truth in truths[-1].items():
        if truth >= k or key not in seen[-1]:
            continue
        distinct: dict[tuple[float, ...], tuple[float, float]] = {}
        for t in range(len(frames) - 1, -1, -1):
            if truths[t].get(key) != truth:
                break
            for terms, estimate, variance in seen[t].get(key, []):
                distinct.setdefault(terms, (estimate, variance))
        weight = sum(1 / v for _, v in distinct.values())
        mean = sum(e / v for e, v in distinct.values()) / weight
        claims.append(Claim(key, truth, mean, math.sqrt(1 / weight), len(distinct)))
    return claims


def findings(claims: list[Claim], k: int) -> tuple[list[VarKey], list[VarKey]]:
    """(located, pinned): the claims narrower than k, and than three whole numbers, that hold."""
    return [c.key for c in claims if c.located(k)], [c.key for c in claims if c.pinned()]


def main() -> None:
    from cityscreen.privacy.gate import release_series  # the CLI only: the attacker reads frames
    from cityscreen.settings import PrivacySettings
    from tests.support.night_attack import night
    from tests.support.privacy_helpers import truth_of

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("persons", nargs="?", type=int, default=200_000)
    parser.add_argument("minutes", nargs="?", type=int, default=150)
    args = parser.parse_args()
    windows = night(args.persons, args.minutes)
    truths = [truth_of(w) for w in windows]
    scale = 15.0  # stock noise's: epsilon 1 over the person counts' 15 families
    runs = {
        "noise per window": PrivacySettings(dp_enabled=True, epsilon_per_window=53 / scale),
        "noise per count (stock noise)": PrivacySettings(stock_noise=True),
    }
    for name, privacy in runs.items():
        released = [frames for _, frames in release_series(windows, privacy)]
        for n in sorted({1, 10, 60, 120, len(released)} & set(range(1, len(released) + 1))):
            claims = attack(released[-n:], truths[-n:], noise_scale=scale, k=privacy.min_persons)
            se = sorted(c.se for c in claims)
            located, pinned = findings(claims, privacy.min_persons)
            print(f"{name}: {n} minutes, {len(claims)} hidden counts, standard error median "
                  f"{se[len(se) // 2]:.1f} least {se[0]:.1f}, located {len(located)}, pinned {len(pinned)}",
                  flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
