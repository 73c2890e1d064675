"""Exact, keyed, vectorised integer noise: the discrete Gaussian of Canonne, Kamath and Steinke (2020).

Why exact: floating-point noise leaks through the gaps between representable numbers (Mironov 2012), and
float-rounded acceptance probabilities shift the distribution the privacy proof is about. Every step here
is integer arithmetic on uniform draws, so the output distribution is exactly the one stated: a
Bernoulli(n/d) is "a uniform whole number below d is below n", exp(-gamma) comes from the alternating
series trick of CKS Algorithm 1, and sigma squared is a ratio of whole numbers.

Why keyed: each noise value belongs to one node (a label such as layer, resolution, cell, window, tree
node). Its random words are SHAKE-256 of the secret and the label, so a replay or a second read of the
same node gives the same value, which averaging cannot remove, and nobody without the secret can
predict it. A node's value does not depend on which other nodes are drawn with it.

Why vectorised: a tick of the provisional layer draws tens of thousands of values. Rows (nodes) run the
rejection loops together under masks; each row reads its own word stream in its own order.

OpenDP samples exactly but from the operating system's entropy, so it cannot republish a node's noise on
replay; that is the one reason this module exists.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

WORDS_PER_ROW = 48  # 63-bit words made per node up front; a row that needs more is extended (rare)
_MAX_63 = (1 << 63) - 1
_MAX_GAP = 3_000_000_000  # its square stays below 2**63
# With sigma^2 = num/den and num <= 5e7: den * t^2 <= 4 num (t = floor(sigma) + 1), so the acceptance
# denominator 2 num den t^2 <= 8 num^2 = 2e16 stays far below 2**62, and a proposal whose gap passes
# _MAX_GAP has acceptance exp(-gap^2 / (2 num den t^2)) < exp(-9e18 / 2e16) = exp(-450).
MAX_SIGMA2_NUM = 50_000_000
MAX_SIGMA2_DEN = 1_000


class KeyedWords:
    """Per-row streams of uniform 63-bit words: row i reads SHAKE-256(secret | label_i) in order."""

    def __init__(self, secret: bytes, labels: Sequence[bytes], words_per_row: int = WORDS_PER_ROW) -> None:
        self._prefix = hashlib.shake_256(len(secret).to_bytes(4, "big") + secret)
        self._labels = list(labels)
        made = b"".join(self._digest(label, words_per_row) for label in self._labels)
        self._words = _as_words(made).reshape(len(self._labels), words_per_row)
        self._extra: dict[int, np.ndarray] = {}  # rows that needed more words: their longer stream
        self._next = np.zeros(len(self._labels), dtype=np.int64)

    def _digest(self, label: bytes, count: int) -> bytes:
        h = self._prefix.copy()
        h.update(label)
        return h.digest(8 * count)

    def take(self, rows: np.ndarray) -> np.ndarray:
        """The next word of each row in `rows` (distinct row indices), as int64 in [0, 2**63)."""
        at = self._next[rows]
        self._next[rows] += 1
        width = self._words.shape[1]
        dense = at < width
        if dense.all():
            words: np.ndarray = self._words[rows, at]
            return words
        out = np.empty(rows.size, dtype=np.int64)
        out[dense] = self._words[rows[dense], at[dense]]
        for i in np.flatnonzero(~dense).tolist():  # past the first words: rare, one row at a time
            out[i] = self._far_word(int(rows[i]), int(at[i]))
        return out

    def _far_word(self, row: int, at: int) -> int:
        extra = self._extra.get(row)
        if extra is None or at >= extra.size:
            # SHAKE output is prefix-stable: a longer digest starts with the words already used
            count = 2 * max(at + 1, self._words.shape[1])
            extra = self._extra[row] = _as_words(self._digest(self._labels[row], count))
        return int(extra[at])


def _as_words(digest: bytes) -> np.ndarray:
    return (np.frombuffer(digest, dtype=">u8").astype(np.uint64) >> np.uint64(1)).astype(np.int64)


def uniform_below(words: KeyedWords, rows: np.ndarray, bound: np.ndarray) -> np.ndarray:
    """One uniform whole number in [0, bound) per row (bound >= 1, below 2**62), by rejection."""
    bound = np.broadcast_to(np.asarray(bound, dtype=np.int64), rows.shape)
    out = np.empty(rows.shape, dtype=np.int64)
    todo = np.arange(rows.size)
    while todo.size:
        w = words.take(rows[todo])
        limit = (_MAX_63 // bound[todo]) * bound[todo]  # a multiple of bound: below it, w % bound is uniform
        ok = w < limit
        out[todo[ok]] = w[ok] % bound[todo[ok]]
        todo = todo[~ok]
    return out


def bernoulli_ratio(words: KeyedWords, rows: np.ndarray, num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """Bernoulli(num / den) per row, 0 <= num <= den."""
    return uniform_below(words, rows, den) < num


def bernoulli_exp_at_most_1(
    words: KeyedWords, rows: np.ndarray, num: np.ndarray, den: np.ndarray
) -> np.ndarray:
    """Bernoulli(exp(-num/den)) for 0 <= num/den <= 1 (CKS Algorithm 1: the first K with a failed
    Bernoulli(gamma/K) is odd with probability exp(-gamma))."""
    num = np.broadcast_to(np.asarray(num, dtype=np.int64), rows.shape)
    den = np.broadcast_to(np.asarray(den, dtype=np.int64), rows.shape)
    k = np.ones(rows.shape, dtype=np.int64)
    live = np.arange(rows.size)
    while live.size:
        go = bernoulli_ratio(words, rows[live], num[live], den[live] * k[live])
        k[live[go]] += 1
        live = live[go]
    odd: np.ndarray = (k % 2) == 1
    return odd


def bernoulli_exp(words: KeyedWords, rows: np.ndarray, num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """Bernoulli(exp(-num/den)) for any num/den >= 0: floor(gamma) Bernoulli(exp(-1)) draws, then one for
    the fraction, all of which must succeed."""
    num = np.broadcast_to(np.asarray(num, dtype=np.int64), rows.shape)
    den = np.broadcast_to(np.asarray(den, dtype=np.int64), rows.shape)
    whole, rest = num // den, num % den
    ok = np.ones(rows.shape, dtype=bool)
    step = 0
    while True:
        live = np.flatnonzero(ok & (whole > step))
        if not live.size:
            break
        ok[live] = bernoulli_exp_at_most_1(
            words, rows[live], np.ones(live.size, np.int64), np.ones(live.size, np.int64)
        )
        step += 1
    live = np.flatnonzero(ok)
    ok[live] = bernoulli_exp_at_most_1(words, rows[live], rest[live], den[live])
    return ok


def discrete_laplace(words: KeyedWords, rows: np.ndarray, t: int) -> np.ndarray:
    """P(y) proportional to exp(-|y|/t) on the integers, t >= 1 whole (CKS Algorithm 2)."""
    out = np.zeros(rows.shape, dtype=np.int64)
    todo = np.arange(rows.size)
    while todo.size:
        r = rows[todo]
        u = uniform_below(words, r, np.full(r.size, t, np.int64))
        d = bernoulli_exp(words, r, u, np.full(r.size, t, np.int64))
        v = np.zeros(r.size, dtype=np.int64)
        live = np.flatnonzero(d)
        while live.size:
            more = bernoulli_exp_at_most_1(
                words, r[live], np.ones(live.size, np.int64), np.ones(live.size, np.int64)
            )
            v[live[more]] += 1
            live = live[more]
        x = u + t * v
        negative = np.zeros(r.size, dtype=bool)
        negative[d] = bernoulli_ratio(
            words, r[d], np.ones(int(d.sum()), np.int64), np.full(int(d.sum()), 2, np.int64)
        )
        done = d & ~(negative & (x == 0))
        out[todo[done]] = np.where(negative[done], -x[done], x[done])
        todo = todo[~done]
    return out


def discrete_gaussian(
    words: KeyedWords, rows: np.ndarray, sigma2_num: int, sigma2_den: int = 1
) -> np.ndarray:
    """P(y) proportional to exp(-y^2 / (2 sigma^2)) on the integers, sigma^2 = sigma2_num / sigma2_den
    (CKS Algorithm 3: a discrete Laplace proposal with t = floor(sigma) + 1, accepted with probability
    exp(-(|y| - sigma^2/t)^2 / (2 sigma^2)), here as one exact ratio of whole numbers)."""
    if sigma2_num <= 0 or sigma2_den <= 0 or sigma2_num > MAX_SIGMA2_NUM or sigma2_den > MAX_SIGMA2_DEN:
        raise ValueError(
            f"sigma^2 = {sigma2_num}/{sigma2_den} is outside what 64-bit exact sampling allows: use "
            f"whole numbers with 0 < numerator <= {MAX_SIGMA2_NUM} and 0 < denominator <= {MAX_SIGMA2_DEN}"
        )
    t = _isqrt_floor(sigma2_num, sigma2_den) + 1
    den = 2 * sigma2_num * sigma2_den * t * t
    out = np.zeros(rows.shape, dtype=np.int64)
    todo = np.arange(rows.size)
    while todo.size:
        y = discrete_laplace(words, rows[todo], t)
        gap = np.abs(y) * sigma2_den * t - sigma2_num  # (|y| - sigma^2/t) * sigma2_den * t
        # A gap past _MAX_GAP would overflow its square; such a proposal would be accepted with probability
        # below exp(-450) (see MAX_SIGMA2_NUM), so it is refused: the one departure from exactness.
        sane = np.abs(gap) <= _MAX_GAP
        accept = np.zeros(todo.size, dtype=bool)
        accept[sane] = bernoulli_exp(
            words, rows[todo[sane]], gap[sane] * gap[sane], np.full(int(sane.sum()), den)
        )
        out[todo[accept]] = y[accept]
        todo = todo[~accept]
    return out


def _isqrt_floor(num: int, den: int) -> int:
    """floor(sqrt(num / den)) exactly."""
    root = int(np.sqrt(num / den))
    while root * root * den > num:
        root -= 1
    while (root + 1) * (root + 1) * den <= num:
        root += 1
    return root


def keyed_discrete_gaussian(
    secret: bytes, labels: Sequence[bytes], sigma2_num: int, sigma2_den: int = 1
) -> np.ndarray:
    """One discrete Gaussian value per label, the same for the same (secret, label, sigma^2) every time."""
    words = KeyedWords(secret, labels)
    return discrete_gaussian(words, np.arange(len(labels)), sigma2_num, sigma2_den)
