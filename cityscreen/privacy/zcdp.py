"""Zero-concentrated differential privacy (Bun and Steinke 2016): what a Gaussian release costs, how costs
add up over a day, and the (epsilon, delta) a manifest states.

rho-zCDP composes by addition, which is why the provisional layer and DP mode's final layer can share
one budget per person-day: each release's rho is summed, then converted once.
"""

from __future__ import annotations

import math
from fractions import Fraction


def gaussian_rho(sensitivity2: float, sigma2: float) -> float:
    """rho of adding (discrete) Gaussian noise of variance sigma2 to values of squared L2 sensitivity
    `sensitivity2` (Canonne, Kamath and Steinke 2020 give the discrete Gaussian the same rho)."""
    if sigma2 <= 0:
        raise ValueError(f"sigma^2 must be positive, got {sigma2}")
    return sensitivity2 / (2.0 * sigma2)


def epsilon(rho: float, delta: float) -> float:
    """(epsilon, delta)-DP implied by rho-zCDP: epsilon = rho + 2 sqrt(rho ln(1/delta)) (Bun and
    Steinke 2016, Proposition 1.3; a little loose, never optimistic)."""
    if not 0 < delta < 1:
        raise ValueError(f"delta must lie strictly between 0 and 1, got {delta}")
    if rho < 0:
        raise ValueError(f"rho cannot be negative, got {rho}")
    return rho + 2.0 * math.sqrt(rho * math.log(1.0 / delta))


def rho_for_epsilon(epsilon_target: float, delta: float) -> float:
    """The largest rho whose conversion stays within `epsilon_target` at `delta` (the inverse of
    `epsilon`: a quadratic in sqrt(rho))."""
    if epsilon_target <= 0:
        raise ValueError(f"epsilon must be positive, got {epsilon_target}")
    log_term = math.log(1.0 / delta)
    root = -math.sqrt(log_term) + math.sqrt(log_term + epsilon_target)
    return root * root


def sigma2_for_rho(sensitivity2: float, rho: float, max_den: int = 1000) -> Fraction:
    """The smallest sigma^2, as a ratio of whole numbers with denominator at most `max_den` (what the exact
    sampler takes), whose release costs at most `rho`: rounded up, never down."""
    if rho <= 0:
        raise ValueError(f"rho must be positive, got {rho}")
    exact = Fraction(sensitivity2) / (2 * Fraction(rho))
    return Fraction(math.ceil(exact * max_den), max_den)
