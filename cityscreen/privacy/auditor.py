"""The differencing auditor made fast: `audit.determined` over the rounds of one suppression, vectorised
and cached, with exactly the same answer (audit.py stays the plain specification; tests compare them).

Why each shortcut gives the same answer as `audit.determined`:
- Interval bounds: see interval.py (the same passes, re-evaluating only rows next to a move, and only
  for the blocks whose mask changed; the bounds are equal as numbers, a zero's sign aside, which no
  sum, max, min or comparison can see).
- The linear-algebra test works per connected group of suppressed values; a group lies inside one
  structural block (a connected set of the equation graph), so it depends only on that block's mask.
  Blocks whose mask did not change since the last round keep their answer; the rest are regrouped and
  each group's matrix (the same rows and columns, both ascending, as `audit._system` builds) goes to
  the same `rank_determined`, whose answer for a matrix is cached across rounds (a group's shape and
  its entries' places and signs name the matrix exactly). Before that, exact elimination tries to prove
  that `rank_determined` would pin nothing (exact_rank.py); only matrices without a proof reach it.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from cityscreen.privacy.audit import rank_determined
from cityscreen.privacy.exact_rank import proven_free
from cityscreen.privacy.interval import IntervalBounds
from cityscreen.privacy.structure import Structure


def equation_table(structure: Structure) -> tuple[np.ndarray, np.ndarray]:
    """Equations as padded rows (head first, then members): variable ids (n = padding) and coefficients."""
    n = len(structure.keys)
    eqs = structure.equations
    width = 1 + max((len(ms) for _, ms in eqs), default=0)
    idx = np.full((len(eqs), width), n, dtype=np.int64)
    lengths = np.fromiter((len(ms) for _, ms in eqs), dtype=np.int64, count=len(eqs))
    idx[:, 0] = np.fromiter((h for h, _ in eqs), dtype=np.int64, count=len(eqs))
    cols = np.arange(width)
    member = (cols[None, :] >= 1) & (cols[None, :] <= lengths[:, None])
    idx[member] = np.fromiter((m for _, ms in eqs for m in ms), dtype=np.int64, count=int(lengths.sum()))
    coef = np.where(member, -1.0, 0.0)
    coef[:, 0] = 1.0
    return idx, coef


def connected(n: int, idx: np.ndarray, on: np.ndarray) -> np.ndarray:
    """Label of every variable (0..n-1): the smallest id linked to it through the `on` entries of rows
    of `idx` (entries off or equal to n link nothing). Variables in no entry keep their own id."""
    label = np.arange(n + 1, dtype=np.int64)
    on = on & (idx < n)
    counts = on.sum(axis=1)
    cells = idx[on]  # row by row
    if not len(cells):
        return label[:n]
    counts = counts[counts > 0]
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    while True:
        low = np.minimum.reduceat(label[cells], starts)  # each row's smallest label
        new = label.copy()
        np.minimum.at(new, cells, np.repeat(low, counts))
        new = new[new]  # pointer jumping: every label is itself a variable's label
        while True:
            nxt = new[new]
            if np.array_equal(nxt, new):
                break
            new = nxt
        if np.array_equal(new, label):
            return label[:n]
        label = new


class Auditor:
    """`determined(mask)` for successive masks of one structure (the rounds of one suppression)."""

    def __init__(self, structure: Structure) -> None:
        self.s = structure
        self.n = len(structure.keys)
        self.idx, self.coef = equation_table(structure)
        self.valid = self.idx < self.n
        self.pos = self.coef > 0
        self.block = connected(self.n, self.idx, self.valid)  # structural blocks, by smallest member
        self.eq_block = self.block[self.idx[:, 0]] if len(self.idx) else np.zeros(0, dtype=np.int64)
        self.iv = IntervalBounds(structure.value, self.idx, self.pos, self.eq_block)
        self.inc_eq, self.inc_ptr = self.iv.inc_eq, self.iv.inc_ptr  # the equations of each variable
        self.seen: dict[bytes, np.ndarray] = {}  # rank answer per matrix pattern, across rounds
        self.prev: np.ndarray | None = None
        self.rank_pinned = np.zeros(self.n, dtype=bool)

    def determined(self, suppressed: np.ndarray) -> list[int]:
        suppressed = np.asarray(suppressed, dtype=bool).copy()
        lo, hi = self.interval_bounds(suppressed)
        value = self.s.value
        pinned = suppressed & ((hi - lo) <= 1e-6 * np.maximum(1.0, np.abs(value)))
        self._rank(suppressed)
        pinned |= self.rank_pinned
        return list(np.flatnonzero(pinned).tolist())

    def interval_bounds(self, suppressed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.iv.bounds(suppressed)

    def _rank(self, suppressed: np.ndarray) -> None:
        redo_blocks = self._redo_blocks(suppressed)
        redo_var = redo_blocks[self.block]
        if not redo_var.any():
            return
        self.rank_pinned[redo_var] = False
        groups = self._groups(suppressed, redo_blocks, redo_var)
        if groups is None:
            return
        self._solve_unseen(groups)
        for g, key in enumerate(groups.keys):
            found = self.seen[key]
            if found.any():
                vs = int(groups.v_start[g])
                self.rank_pinned[groups.vars_all[vs : vs + len(found)]] |= found

    def _redo_blocks(self, suppressed: np.ndarray) -> np.ndarray:
        """Per block (by its smallest member): its suppression changed since the last call (all, at first)."""
        if self.prev is None:
            redo_blocks = np.ones(self.n, dtype=bool)
        else:
            redo_blocks = np.zeros(self.n, dtype=bool)
            redo_blocks[self.block[suppressed != self.prev]] = True
        self.prev = suppressed
        return redo_blocks

    def _groups(
        self, suppressed: np.ndarray, redo_blocks: np.ndarray, redo_var: np.ndarray
    ) -> _Groups | None:
        """The connected groups of suppressed variables in the blocks to redo that some equation ties to a
        released value, each group's matrix as entries and as a key naming its shape and entries."""
        sup_ext = np.append(suppressed, False)
        on_all = sup_ext[self.idx]
        eq_ids = np.flatnonzero(redo_blocks[self.eq_block] & on_all.any(axis=1))  # touched equations
        if not len(eq_ids):
            return None
        idx, on = self.idx[eq_ids], on_all[eq_ids]
        label = connected(self.n, idx, on)
        homogeneous = (on | ~self.valid[eq_ids]).all(axis=1)
        first = idx[np.arange(len(idx)), on.argmax(axis=1)]
        eq_label = label[first]
        useful = np.unique(eq_label[~homogeneous])  # groups with an equation holding a released value
        if not len(useful):
            return None
        vars_all = np.flatnonzero(suppressed & redo_var)
        vars_all = vars_all[np.isin(label[vars_all], useful)]
        vars_all = vars_all[np.argsort(label[vars_all], kind="stable")]  # by group, ascending within
        keep = np.isin(eq_label, useful)
        eq_sorted = np.flatnonzero(keep)[np.argsort(eq_label[keep], kind="stable")]
        # column of each variable and row of each equation within its group (as audit._system numbers
        # them: both ascending), and the group's matrix entries, row by row
        v_start, v_size = _runs(label[vars_all])
        e_start, e_size = _runs(eq_label[eq_sorted])
        col = np.zeros(self.n + 1, dtype=np.int64)
        col[vars_all] = np.arange(len(vars_all)) - np.repeat(v_start, v_size)
        row = np.arange(len(eq_sorted)) - np.repeat(e_start, e_size)
        group = np.repeat(np.arange(len(useful)), e_size)
        sub, m = idx[eq_sorted], on[eq_sorted]
        ent_g = np.broadcast_to(group[:, None], sub.shape)[m]
        ent_r = np.broadcast_to(row[:, None], sub.shape)[m]
        ent_c = col[sub[m]]
        ent_s = self.coef[eq_ids[eq_sorted]][m]
        per_group = np.bincount(ent_g, minlength=len(useful))
        # an entry's code names its place and sign; with the shape, a group's codes name its matrix
        code = (ent_r * np.repeat(v_size, per_group) + ent_c) * 2 + (ent_s > 0)
        bounds = np.concatenate(([0], np.cumsum(per_group))).tolist()
        keys = [
            repr((int(e_size[g]), int(v_size[g]))).encode() + code[bounds[g] : bounds[g + 1]].tobytes()
            for g in range(len(useful))
        ]
        return _Groups(vars_all, v_start, v_size, e_size, ent_g, ent_r, ent_c, ent_s, bounds, keys)

    def _solve_unseen(self, gs: _Groups) -> None:
        """Rank-check each matrix not seen before, once: proven free cheaply, else by exact rank."""
        todo: dict[bytes, int] = {}  # a matrix not seen before -> the first group holding it
        for g, key in enumerate(gs.keys):
            if key not in self.seen and key not in todo:
                todo[key] = g
        if not todo:
            return
        groups = np.fromiter(todo.values(), dtype=np.int64, count=len(todo))
        pick = np.full(len(gs.keys), -1, dtype=np.int64)
        pick[groups] = np.arange(len(groups))
        sel = pick[gs.ent_g] >= 0
        proven = proven_free(
            gs.e_size[groups], gs.v_size[groups], pick[gs.ent_g[sel]], gs.ent_r[sel], gs.ent_c[sel],
            gs.ent_s[sel] > 0,
        )  # fmt: skip
        for (key, g), free in zip(todo.items(), proven, strict=True):
            if free:  # proven: rank_determined pins nothing
                self.seen[key] = np.zeros(int(gs.v_size[g]), dtype=bool)
                continue
            a = np.zeros((int(gs.e_size[g]), int(gs.v_size[g])))
            span = slice(gs.bounds[g], gs.bounds[g + 1])
            np.add.at(a, (gs.ent_r[span], gs.ent_c[span]), gs.ent_s[span])
            self.seen[key] = rank_determined(a)


class _Groups(NamedTuple):
    """Connected groups of suppressed variables: their variables (by group), each group's first
    variable and size, its equation count, its matrix entries (group, row, column, coefficient), where
    each group's entries start, and a key per group naming its matrix."""

    vars_all: np.ndarray
    v_start: np.ndarray
    v_size: np.ndarray
    e_size: np.ndarray
    ent_g: np.ndarray
    ent_r: np.ndarray
    ent_c: np.ndarray
    ent_s: np.ndarray
    bounds: list[int]
    keys: list[bytes]


def _runs(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and length of each run of equal values in a sorted array."""
    starts = np.flatnonzero(np.concatenate(([True], labels[1:] != labels[:-1]))) if len(labels) else labels
    return starts, np.diff(np.append(starts, len(labels)))
