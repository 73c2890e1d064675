"""Keyed pseudonyms: raw identifiers become keyed BLAKE2b digests under a key that rotates by period.

BLAKE2b in keyed mode is a MAC (RFC 7693): like HMAC-SHA256 a pseudorandom function of the identifier
under the key, at well under half its cost here. The ingest edge hashes every identifier new in its
period, and in a megacity that is most SIM events (a phone reports a few times an hour, among millions):
this hash bounded the edge's catch-up.

The period key is HMAC-SHA256(secret, "period:<n>") with n = (event time - offset) // rotation period, so
the same identifier maps to the same pseudonym within a period (distinct counting works inside a window)
and to an unlinkable one in the next (no long-lived tracking). Windows align with periods because the
rotation is a whole number of days/hours, windows divide it and the offset. The offset puts the
rotation at a quiet hour of the city: the people-present stock restarts at each rotation (a person's new
pseudonym is unlinkable to the old), and refills as idle phones report within 30 minutes."""

from __future__ import annotations

import hashlib
import hmac
from functools import lru_cache
from typing import Any

import numpy as np

PSEUDONYM_HEX_CHARS = 20  # 80 bits: collisions negligible for tens of millions of persons
DIGEST_BYTES = PSEUDONYM_HEX_CHARS // 2


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
    return hashlib.blake2b(f"{domain}:{identifier}".encode(), key=key, digest_size=DIGEST_BYTES).hexdigest()


class Pseudonymizer:
    """`cityscreen.pseudonym.pseudonymize`, made fast: per-period keyed states and a bounded memo."""

    def __init__(self, secret: str, rotation_s: int, memo_size: int = 1_000_000, offset_s: int = 0) -> None:
        self.secret, self.rotation_s, self.memo_size = secret, rotation_s, memo_size
        self.offset_s = offset_s
        self._states: dict[int, Any] = {}  # period -> BLAKE2b state with the period key absorbed
        # (period, domain) -> identifier -> pseudonym: a batch of one period and domain looks up plain
        # strings, with no key tuple or "domain:id" string built per event
        self._memo: dict[tuple[int, str], dict[str, str]] = {}

    def __call__(self, identifier: str, ts_ms: int, domain: str) -> str:
        period = period_of(ts_ms, self.rotation_s, self.offset_s)
        return self._of_period([identifier], period, domain)[0]

    def many(self, identifiers: list[str], ts_ms: np.ndarray, domain: str) -> list[str]:
        """The pseudonyms of a batch's identifiers (ts_ms: their events' times), one hash per identifier
        not yet seen in its period; a batch usually lies in one period, so it is one memo lookup each."""
        periods = (ts_ms.astype(np.int64) - self.offset_s * 1000) // (self.rotation_s * 1000)
        if len(periods) == 0 or (periods == periods[0]).all():
            return self._of_period(identifiers, int(periods[0]) if len(periods) else 0, domain)
        out = [""] * len(identifiers)
        for period in np.unique(periods).tolist():
            where = np.flatnonzero(periods == period).tolist()
            for i, value in zip(
                where, self._of_period([identifiers[i] for i in where], period, domain), strict=True
            ):
                out[i] = value
        return out

    def _of_period(self, identifiers: list[str], period: int, domain: str) -> list[str]:
        memo = self._memo.get((period, domain))
        if memo is None:
            memo = self._memo[(period, domain)] = {}
        get = memo.get
        out = list(map(get, identifiers))
        if None not in out:
            return out  # type: ignore[return-value]
        state = self._states.get(period)
        if state is None:
            if len(self._states) > 8:
                self._states.clear()
            key = _period_key(self.secret, period)
            state = self._states[period] = hashlib.blake2b(key=key, digest_size=DIGEST_BYTES)
        missing = [n for n, value in enumerate(out) if value is None]
        if sum(map(len, self._memo.values())) + len(missing) > self.memo_size:
            # crude but bounded: a new period makes old entries useless anyway
            self._memo.clear()
            memo = self._memo[(period, domain)] = {}
        fresh = state.copy  # the key block is compressed once per period, not once per identifier
        prefix = f"{domain}:"
        new = [identifiers[n] for n in missing]
        hashed: list[str] = []
        for identifier in new:
            h = fresh()
            h.update((prefix + identifier).encode())
            hashed.append(h.hexdigest())
        for n, value in zip(missing, hashed, strict=True):
            out[n] = value
        if len(new) <= self.memo_size:
            memo.update(zip(new, hashed, strict=True))  # a batch's repeats collapse here
        return out  # type: ignore[return-value]
