"""Keyed pseudonyms: raw identifiers become HMAC-SHA256 digests under a key that rotates by period.

The period key is HMAC(secret, "period:<n>") with n = (event time - offset) // rotation period, so the same
identifier maps to the same pseudonym within a period (distinct counting works inside a window) and
to an unlinkable one in the next (no long-lived tracking). Windows align with periods because the
rotation is a whole number of days/hours, windows divide it and the offset. The offset puts the
rotation at a quiet hour of the city: the people-present stock restarts at each rotation (a person's new
pseudonym is unlinkable to the old), and refills as idle phones report within 30 minutes.
"""

from __future__ import annotations

import hashlib
import hmac
from functools import lru_cache

PSEUDONYM_HEX_CHARS = 20  # 80 bits: collisions negligible for tens of millions of persons


@lru_cache(maxsize=64)
def _period_key(secret: str, period: int) -> bytes:
    return hmac.new(secret.encode(), f"period:{period}".encode(), hashlib.sha256).digest()


def period_of(ts_ms: int, rotation_s: int, offset_s: int = 0) -> int:
    """The pseudonym period holding ts_ms: periods start `offset_s` after each multiple of the rotation."""
    return (ts_ms - offset_s * 1000) // (rotation_s * 1000)


def period_start_ms(ts_ms: int, rotation_s: int, offset_s: int = 0) -> int:
    """When the pseudonym period holding ts_ms began."""
    return period_of(ts_ms, rotation_s, offset_s) * rotation_s * 1000 + offset_s * 1000


def pseudonymize(
    identifier: str, *, ts_ms: int, secret: str, rotation_s: int, domain: str, offset_s: int = 0
) -> str:
    """The pseudonym of `identifier` (in namespace `domain`, e.g. "imsi") for the period holding ts_ms."""
    key = _period_key(secret, period_of(ts_ms, rotation_s, offset_s))
    digest = hmac.new(key, f"{domain}:{identifier}".encode(), hashlib.sha256).hexdigest()
    return digest[:PSEUDONYM_HEX_CHARS]
