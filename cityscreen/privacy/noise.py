"""Deterministic noise for differential privacy: one keyed stream per (draw, resolution, cell, statistic).

The stream is seeded by HMAC-SHA256 under the secret `dp_seed`, so a replay of the same window gives the
same frames, and reading a frame again returns the same noise, which cannot be averaged away. The draw
is either the window (`fresh_draw`: DP mode, new noise every window, so the guarantee composes window
by window) or the true value (`stable_draw`: stock noise, the same noise for as long as a count holds,
as the cell key method of official statistics does, so that a count persisting over many windows cannot
be averaged out of them).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import random


def fresh_draw(window_start_ms: int) -> str:
    """The draw of one window: noise redrawn every window."""
    return f"v1|{window_start_ms}"


def stable_draw(window_s: int, value: float) -> str:
    """The draw of one true count over windows of `window_s`: the same noise while the count holds."""
    return f"s1|{window_s}s|{round(value)}"


def _digest(secret: str, draw: str, res: int, cell: str, stat: str) -> bytes:
    message = f"{draw}|{res}|{cell}|{stat}".encode()
    return hmac.digest(secret.encode(), message, hashlib.sha256)  # one call, the same bytes as hmac.new


def noise_rng(secret: str, *, draw: str, res: int, cell: str, stat: str) -> random.Random:
    """A PRNG for one released value; its seed is secret, so the noise cannot be predicted or removed."""
    return random.Random(int.from_bytes(_digest(secret, draw, res, cell, stat), "big"))


def keyed_uniform(secret: str, *, draw: str, res: int, cell: str, stat: str) -> float:
    """One uniform in (0, 1) for one released value, straight from its keyed digest (53 bits)."""
    bits = int.from_bytes(_digest(secret, draw, res, cell, stat)[:8], "big") >> 11
    return (bits + 0.5) / float(1 << 53)


def laplace(uniform: float, scale: float) -> float:
    """Laplace(0, scale) from one uniform in (0, 1), by inverting the CDF."""
    u = uniform - 0.5
    return -scale * math.copysign(1.0, u) * math.log(1.0 - 2.0 * abs(u))


def _geometric(rng: random.Random, p: float) -> int:
    """Failures before the first success, success probability p."""
    u = rng.random()
    while u == 0.0:
        u = rng.random()
    return math.floor(math.log(u) / math.log1p(-p))


def discrete_laplace(rng: random.Random, t: float) -> int:
    """P(y) proportional to exp(-|y| / t) on the integers."""
    p = 1.0 - math.exp(-1.0 / t)
    return _geometric(rng, p) - _geometric(rng, p)


def discrete_gaussian(rng: random.Random, sigma: float) -> int:
    """P(y) proportional to exp(-y^2 / (2 sigma^2)) on the integers (Canonne, Kamath, Steinke 2020:
    rejection sampling from a discrete Laplace)."""
    t = math.floor(sigma) + 1.0
    while True:
        y = discrete_laplace(rng, t)
        accept = math.exp(-((abs(y) - sigma * sigma / t) ** 2) / (2.0 * sigma * sigma))
        if rng.random() < accept:
            return y
