"""What the gate's protection programs decided, remembered per process by the programs' content.

Which values of a group of suppressed values break a rule is fixed by the group's programs alone (its
equations over the suppressed values, their right-hand sides, the floors, known zeros and rules):
values in doubt get exact bounds (protection.py). So a group whose programs equal those of a group
decided before in the same process takes that answer, and gives the same frames. Consecutive minutes of
a stock share about half of their groups (the fringe changes little from one minute to the next).
"""

from __future__ import annotations

import hashlib
import threading

import numpy as np

__all__ = ["DECIDED", "Decided", "digest"]


def digest(*arrays: np.ndarray) -> bytes:
    """A 128-bit digest of arrays' types, shapes and contents."""
    h = hashlib.blake2b(digest_size=16)
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.digest()


class Decided:
    """Decisions of groups by the digest of their programs, the oldest forgotten past `size` (a census
    minute has about 930 groups); one per process, so each gate process keeps its own."""

    def __init__(self, size: int) -> None:
        self.size, self.lock = size, threading.Lock()
        self.by_digest: dict[bytes, np.ndarray] = {}
        self.hits = 0  # answers given from memory (tests, diagnostics)

    def get(self, digest: bytes) -> np.ndarray | None:
        with self.lock:
            local = self.by_digest.get(digest)
            self.hits += local is not None
            return local

    def put(self, digest: bytes, local: np.ndarray) -> np.ndarray:
        with self.lock:
            self.by_digest[digest] = local
            while len(self.by_digest) > self.size:
                del self.by_digest[next(iter(self.by_digest))]
        return local

    def clear(self) -> None:
        with self.lock:
            self.by_digest.clear()


DECIDED = Decided(20_000)
