"""The privacy accountant: how the per-window budget is split over statistics, and what a day costs.

Budget unit: one person, one window. Everything a person can touch in a window is one "family" of
disjoint values (one resolution x one metric x its total or one breakdown; one flow kind). A person adds
to at most `sensitivity` of a family in L1. Composition is sequential (plain sums, no advanced
composition for Laplace; zero-concentrated DP for the discrete Gaussian), the honest conservative choice.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass

from cityscreen.aggregates import STATISTICS
from cityscreen.privacy import zcdp
from cityscreen.settings import PrivacySettings

SECONDS_PER_DAY = 86_400
FLOW_KINDS = ("movement", "transit")
# statistics that place each person in one base cell per window (no contribution bound needed)
PERSON_COUNTS = frozenset({"population.persons", "active.persons"})
# their layers: people present are a stock, so `stock_noise` noises them (and active persons, counted in
# the same base window); the event layers keep thresholds and complementary suppression
PERSON_LAYERS = ("population", "active")


@dataclass(frozen=True)
class Family:
    name: str  # e.g. "r8:population.persons|gender" or "flows:transit"
    sensitivity: float  # L1 (Laplace) and an upper bound of L2 (Gaussian)


@dataclass(frozen=True)
class Budget:
    mechanism: str
    families: tuple[Family, ...]
    epsilon_per_family: float  # Laplace: each family's epsilon; Gaussian: the (eps, delta) of one family
    rho_per_family: float  # zCDP per family (Gaussian); 0 for Laplace
    epsilon_per_window: float
    epsilon_per_day: float
    windows_per_day: int
    delta: float

    def scale(self, family: Family) -> float:
        """Laplace scale b, or the discrete Gaussian's sigma, for values of `family`."""
        if self.mechanism == "laplace":
            return family.sensitivity / self.epsilon_per_family
        return family.sensitivity / math.sqrt(2.0 * self.rho_per_family)


def sensitivity(metric: str, privacy: PrivacySettings) -> float:
    """Most one person changes one family of `metric` (after the aggregator's contribution bounds)."""
    if metric in PERSON_COUNTS:
        return 1.0  # each person is placed in exactly one base cell per window
    if metric == "payments.amount_cny":
        return privacy.max_contributions_per_window * privacy.max_amount_cny
    return float(privacy.max_contributions_per_window)


def families(
    resolutions: list[int], privacy: PrivacySettings, layers: Collection[str] | None = None
) -> tuple[Family, ...]:
    """Every family of the layers given (None: every layer and the flows)."""
    out: list[Family] = []
    for res in resolutions:
        for layer, metrics in STATISTICS.items():
            if layers is not None and layer not in layers:
                continue
            for metric, dims in metrics.items():
                name = f"{layer}.{metric}"
                for part in ("", *(f"|{d}" for d in dims)):
                    out.append(Family(f"r{res}:{name}{part}", sensitivity(name, privacy)))
    # transit flows: up to the contribution bound of trips; movement: bounded the same way, conservatively
    if layers is None or "flows" in layers:
        out.extend(
            Family(f"flows:{kind}", float(privacy.max_contributions_per_window)) for kind in FLOW_KINDS
        )
    return tuple(out)


def budget(
    privacy: PrivacySettings, *, window_s: int, resolutions: list[int], layers: Collection[str] | None = None
) -> Budget:
    """Split `epsilon_per_window` evenly over every family a person can touch in the noised `layers`
    (None: all of them), and compose over a day."""
    fams = families(resolutions, privacy, layers)
    windows = max(1, SECONDS_PER_DAY // window_s)
    eps_window = privacy.epsilon_per_window
    if privacy.dp_mechanism == "laplace":
        return Budget(
            "laplace", fams, eps_window / len(fams), 0.0, eps_window, eps_window * windows, windows, 0.0
        )
    delta = max(privacy.delta, 1e-12)
    rho_window = zcdp.rho_for_epsilon(eps_window, delta)
    rho_family = rho_window / len(fams)
    return Budget(
        "discrete_gaussian",
        fams,
        zcdp.epsilon(rho_family, delta),
        rho_family,
        eps_window,
        zcdp.epsilon(rho_window * windows, delta),
        windows,
        delta,
    )


def family_name(res: int, stat: str) -> str:
    """The family of one released value, e.g. "r8:population.persons|gender"."""
    metric, _, part = stat.partition("|")
    dim = part.partition("=")[0]
    return f"r{res}:{metric}" + (f"|{dim}" if dim else "")


def noised_layers(privacy: PrivacySettings) -> tuple[str, ...] | None:
    """The layers whose released values carry noise: None for every layer (DP mode), the person counts'
    under `stock_noise`, none in threshold mode."""
    if privacy.dp_enabled:
        return None
    return PERSON_LAYERS if privacy.stock_noise else ()
