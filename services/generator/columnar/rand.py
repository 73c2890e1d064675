"""Counter-based random numbers: every draw is a hash of (seed, stream, day, person).

A person's draws do not depend on who else is simulated, on the order of computation or on how the
population is split into blocks, so any subset of persons and any slice of time can be computed on
its own and still agree with a longer run. The mixer is splitmix64's finaliser, vectorised in numpy.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

U64 = npt.NDArray[np.uint64]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

MASK64 = (1 << 64) - 1
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_TO_UNIT = 1.0 / float(1 << 53)


def mix64(x: U64) -> U64:
    """splitmix64's finaliser: a bijection of uint64 that scatters neighbouring inputs."""
    x = x ^ (x >> np.uint64(30))
    x = x * _M1
    x = x ^ (x >> np.uint64(27))
    x = x * _M2
    return x ^ (x >> np.uint64(31))


def key_of(*parts: int) -> int:
    """A 64-bit key of small integers (seed, stream, day), mixed in Python so streams never overlap."""
    k = 0x6A09E667F3BCC908
    for part in parts:
        k = ((k ^ (part & MASK64)) * 0x100000001B3) & MASK64
        k = int(mix64(np.array([k], dtype=np.uint64))[0])
    return k


Stream = int | npt.NDArray[np.integer]
_STREAM = np.uint64(0xD1B54A32D192ED03)


class Draws:
    """Uniform, integer and normal draws per person for one (seed, day): `stream` names the quantity
    (an int, or one per person: a trip's draws are keyed by its number within the day)."""

    def __init__(self, seed: int, day: int) -> None:
        self.seed, self.day = seed, day
        self._base = key_of(seed, day)

    def bits(self, person: npt.NDArray[np.integer], stream: Stream) -> U64:
        if isinstance(stream, int):
            key: U64 | np.uint64 = np.uint64(key_of(self._base, stream))
        else:
            key = mix64(np.asarray(stream).astype(np.uint64) * _STREAM ^ np.uint64(self._base))
        return mix64(person.astype(np.uint64) * _GOLDEN ^ key)

    def uniform(self, person: npt.NDArray[np.integer], stream: Stream) -> F64:
        """[0, 1) with 53 random bits."""
        return (self.bits(person, stream) >> np.uint64(11)).astype(np.float64) * _TO_UNIT

    def integers(self, person: npt.NDArray[np.integer], stream: Stream, lo: int, hi: int) -> I64:
        """Integers in [lo, hi] (both ends included, as random.randint)."""
        return lo + (self.uniform(person, stream) * (hi - lo + 1)).astype(np.int64)

    def normal(self, person: npt.NDArray[np.integer], stream: Stream) -> F64:
        """Standard normal by Box-Muller over two streams."""
        u1 = 1.0 - self.uniform(person, stream)  # (0, 1]: log stays finite
        u2 = self.uniform(person, stream + 1_000_003)
        return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)

    def choice(self, person: npt.NDArray[np.integer], stream: Stream, weights: npt.ArrayLike) -> I64:
        """Indexes drawn with the given (unnormalised) weights."""
        cum = np.cumsum(np.asarray(weights, dtype=np.float64))
        pick = np.searchsorted(cum / cum[-1], self.uniform(person, stream), side="right")
        return np.minimum(pick, len(cum) - 1).astype(np.int64)


NO_DAY = -1  # the day of draws that do not change from day to day (who a person is)
