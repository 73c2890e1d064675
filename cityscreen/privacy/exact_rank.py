"""A proof that no unknown of a group is determined, by exact elimination: the fast path of
`audit.rank_determined`, which stays the deciding test whenever no such proof is found.

A group's matrix has entries +1 (head) and -1 (member). Each row is held as two Python ints, the
bitmasks of its +1 and of its -1 columns, so a row operation is a few big-int operations. Gaussian
elimination with pivots taken column by column, then back-substitution from the last pivot, gives the
reduced row echelon form exactly, as long as every entry stays in {-1, 0, 1}; an entry the two masks
cannot hold abandons the proof.

Why a proof means `rank_determined` pins nothing (the same answer, never a less careful one):
- The reduced form is exact, and a reduced row holds its pivot and non-pivot columns only. A column
  that is not a pivot, or a pivot whose reduced row holds a non-pivot column f, has a nonzero entry in
  the null vector of f (x_f = 1, each pivot x_p = -row_p[f] / row_p[p]): that unknown can move while
  every equation holds, so it is not determined.
- That null vector has entries in {-1, 0, 1} on at most 1 + rank columns, so the column's share of the
  null space is at least 1 / (1 + rank), and its weight in the row space at most 1 - 1 / (1 + rank),
  which MAX_RANK keeps at or below 0.999. `rank_determined` pins a column when its weight in the span of
  the Gram matrix's larger eigenvectors (a subspace of the row space) exceeds 1 - 1e-6, a thousand
  times closer to 1 than any weight proven here (its rounding is far smaller than that gap).
Columns are renumbered (fewest entries first) only to keep the elimination short: which columns are
free does not depend on their order.
"""

from __future__ import annotations

from heapq import heapify, heappop, heappush
from itertools import pairwise

import numpy as np

MAX_RANK = 999  # keeps every proven weight <= 1 - 1 / (1 + rank) <= 0.999


def proven_free(
    n_rows: np.ndarray,
    n_cols: np.ndarray,
    group: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    plus: np.ndarray,
) -> list[bool]:
    """`all_free` for each of several groups, given their entries (group, row, column, +1 or not)."""
    return [
        bits is not None and all_free(*bits) for bits in bit_rows(n_rows, n_cols, group, rows, cols, plus)
    ]


def bit_rows(
    n_rows: np.ndarray,
    n_cols: np.ndarray,
    group: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    plus: np.ndarray,
) -> list[tuple[list[int], int] | None]:
    """Per group, each row as one int holding the bitmask of its +1 columns and, `shift` bits up, that of
    its -1 columns (columns renumbered within the group, fewest entries first), and `shift`; None for a
    group where an entry repeats (its sum may not be a sign)."""
    col_first = np.concatenate(([0], np.cumsum(n_cols)))
    row_first = np.concatenate(([0], np.cumsum(n_rows)))
    col_group = np.repeat(np.arange(len(n_cols)), n_cols)
    where = col_first[group] + cols  # the entry's column, numbered across the groups
    order = np.lexsort((np.bincount(where, minlength=int(col_first[-1])), col_group))  # stable by column
    renumber = np.empty(len(order), dtype=np.int64)
    renumber[order] = np.arange(len(order)) - col_first[col_group[order]]
    # each row takes whole bytes: its +1 mask, then its -1 mask as many bytes on
    half = -(-n_cols // 8)  # bytes of one mask, per group
    byte_first = np.concatenate(([0], np.cumsum(np.repeat(2 * half, n_rows))))
    place = byte_first[row_first[group] + rows] * 8 + renumber[where]  # the entry's bit, sign aside
    seen = np.sort(place)
    repeats = np.zeros(len(n_rows), dtype=bool)
    repeats[group[np.isin(place, seen[1:][seen[1:] == seen[:-1]])]] = True
    bit = place + np.where(plus, 0, half[group] * 8)
    packed = np.zeros(int(byte_first[-1]), dtype=np.uint8)
    np.bitwise_or.at(packed, bit >> 3, np.left_shift(1, bit & 7).astype(np.uint8))
    data = packed.tobytes()
    bounds = byte_first.tolist()
    words = [int.from_bytes(data[a:b], "little") for a, b in pairwise(bounds)]
    out: list[tuple[list[int], int] | None] = []
    for g, (a, b) in enumerate(pairwise(row_first.tolist())):
        out.append(None if repeats[g] else (words[a:b], int(half[g]) * 8))
    return out


def all_free(rows: list[int], shift: int) -> bool:
    """True when the exact reduced echelon form of the rows (each its +1 mask | its -1 mask << shift) has
    entries in {-1, 0, 1}, rank <= MAX_RANK, and no pivot row that is its pivot alone."""
    low_bits = (1 << shift) - 1
    # forward: rows wait under their lowest column (the bit length of their lowest bit); the first row
    # of the lowest waiting column becomes its pivot row, the others drop that column and wait on
    waiting: dict[int, list[tuple[int, int]]] = {}
    for row in rows:
        p, n = row & low_bits, row >> shift
        x = p | n
        if x:
            waiting.setdefault((x & -x).bit_length(), []).append((p, n))
    columns = list(waiting)
    heapify(columns)
    pivot_rows: dict[int, tuple[int, int]] = {}  # pivot bit -> row
    order: list[int] = []  # pivot bits, ascending
    while columns:
        low = heappop(columns)
        (pp, pn), *rest = waiting.pop(low)
        bit = 1 << (low - 1)
        pivot_rows[bit] = (pp, pn)
        order.append(bit)
        for p, n in rest:
            # add the pivot row, negated where both hold the same sign at `bit`
            up, un = (pn, pp) if (p if pp & bit else n) & bit else (pp, pn)
            if (p & up) | (n & un):
                return False  # an entry of 2
            cancel = (p & un) | (n & up)
            p, n = (p | up) & ~cancel, (n | un) & ~cancel
            x = p | n
            if x:
                key = (x & -x).bit_length()
                later = waiting.get(key)
                if later is None:
                    waiting[key] = [(p, n)]
                    heappush(columns, key)
                else:
                    later.append((p, n))
    if len(order) > MAX_RANK:
        return False
    pivots = sum(order)
    # back-substitution from the last pivot: a pivot row holds only higher pivots, each cleared with
    # that pivot's reduced row (which holds no other pivot), the highest first
    for bit in reversed(order):
        p, n = pivot_rows[bit]
        other = ((p | n) & pivots) ^ bit
        while other:
            top = 1 << (other.bit_length() - 1)
            other ^= top
            up, un = pivot_rows[top]
            if (p & up | n & un) & top:
                up, un = un, up
            if (p & up) | (n & un):
                return False
            cancel = (p & un) | (n & up)
            p, n = (p | up) & ~cancel, (n | un) & ~cancel
        if (p | n) == bit:  # the pivot alone: this unknown may be determined, the full test decides
            return False
        pivot_rows[bit] = (p, n)
    return True
