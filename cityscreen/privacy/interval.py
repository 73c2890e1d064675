"""`audit.interval_bounds` over the audit rounds of one suppression, redoing only the blocks whose mask
changed, with the same bounds.

Why they are the same:
- A pass evaluates every live row from the bounds of the previous pass (padded to the same width, so
  numpy sums each row with the same pairwise tree, whichever other rows share the array). Lower bounds
  only rise and upper bounds only fall, so a row whose variables did not move since it was last
  evaluated gives what it gave then, which the bounds already hold: only rows next to a moved variable
  need evaluating (the worklist).
- Rows never leave their structural block, so each block follows its own trajectory, fixed by its
  mask. The global loop stops after the first pass T (at most _MAX_PASSES) where no block reports a
  change over 1e-9 (a suppressed bound, or a row result pushing past a released value). So per block
  we keep what each pass reported and what moved; the bounds are the start plus every move up to T.
  A block that stops moving reports, at every later pass, just its rows that push against a released
  value (the same rows give the same results).
- Only the sign of a zero can differ: max(0.0, -0.0) keeps whichever comes first, and the order of the
  rows differs. Sums, negation, max, min and comparisons give every nonzero result and every test the
  same either way, so all bounds are equal as numbers and `determined` is the same.
- `_pass` is audit's term / rest-of-row / back-to-variable chain with what is known folded in (the head
  is column 0, the lower bounds are finite): the same arrays are summed, so the same numbers come out.
"""

from __future__ import annotations

import numpy as np

from cityscreen.privacy.audit import _MAX_PASSES, _bounds_from_rest


def rows_of(idx: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(ptr, rows): the rows of the padded equation table `idx` (padding n) that hold each variable v,
    ascending, as rows[ptr[v] : ptr[v + 1]]."""
    valid = idx < n
    flat_v = idx[valid]
    flat_e = np.broadcast_to(np.arange(len(idx))[:, None], idx.shape)[valid]
    order = np.argsort(flat_v, kind="stable")
    return np.searchsorted(flat_v[order], np.arange(n + 1)), flat_e[order]


class IntervalBounds:
    """Bounds for successive masks; `idx`/`pos` the padded equation table, `block` each row's block."""

    def __init__(self, value: np.ndarray, idx: np.ndarray, pos: np.ndarray, row_block: np.ndarray) -> None:
        self.n = len(value)
        self.value = value
        self.value_ext = np.append(value, 0.0)
        self.idx, self.pos = idx, pos
        self.valid = idx < self.n
        # `_pass` needs the head in column 0 and nowhere else (and finite lower bounds, checked per pass)
        self.head_first = bool(not len(idx) or (pos[:, 0].all() and not pos[:, 1:].any()))
        _, self.row_block = np.unique(row_block, return_inverse=True)  # blocks numbered 0..B-1
        self.blocks = int(self.row_block.max()) + 1 if len(idx) else 0
        self.var_block = np.full(self.n + 1, -1, dtype=np.int64)  # -1: in no equation (never moves)
        self.var_block[idx[self.valid]] = np.broadcast_to(self.row_block[:, None], idx.shape)[self.valid]
        self.inc_ptr, self.inc_eq = rows_of(idx, self.n)  # the rows of each variable (CSR)
        self.prev: np.ndarray | None = None
        self.flags = np.zeros((_MAX_PASSES, self.blocks), dtype=bool)  # block reported a change at pass
        self.moves = (
            np.zeros(0, np.int64),
            np.zeros(0, np.int64),
            np.zeros(0),
            np.zeros(0),
        )  # t, var, lo, hi

    def bounds(self, suppressed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        suppressed = np.asarray(suppressed, dtype=bool)
        lo = np.where(suppressed, 0.0, self.value)
        hi = np.where(suppressed, np.inf, self.value)
        if not len(self.idx):
            return lo, hi
        redo = np.ones(self.blocks, dtype=bool)
        if self.prev is not None:
            redo[:] = False
            blk = self.var_block[np.flatnonzero(suppressed != self.prev)]
            redo[blk[blk >= 0]] = True
        self.prev = suppressed.copy()
        if redo.any():
            self._redo(suppressed, redo, lo, hi)
        reported = self.flags.any(axis=1)
        quiet = np.flatnonzero(~reported)
        last = int(quiet[0]) + 1 if len(quiet) else _MAX_PASSES  # the pass the global loop stops after
        t, v, mlo, mhi = self.moves
        keep = t <= last
        t, v, mlo, mhi = t[keep], v[keep], mlo[keep], mhi[keep]
        order = np.lexsort((t, v))
        v, mlo, mhi = v[order], mlo[order], mhi[order]
        final = np.append(v[1:] != v[:-1], True) if len(v) else np.zeros(0, dtype=bool)
        lo[v[final]] = mlo[final]  # each variable's last move up to that pass
        hi[v[final]] = mhi[final]
        return lo, hi

    def _redo(self, suppressed: np.ndarray, redo: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> None:
        t, v, mlo, mhi = self.moves
        kept = ~redo[self.var_block[v]]
        logs = [(t[kept], v[kept], mlo[kept], mhi[kept])]
        self.flags[:, redo] = False
        sup_ext = np.append(suppressed, False)
        live = np.flatnonzero((sup_ext[self.idx] & self.valid).any(axis=1) & redo[self.row_block])
        row_of_eq = np.full(len(self.idx) + 1, -1, dtype=np.int64)
        row_of_eq[live] = np.arange(len(live))
        idx, pos, row_block = self.idx[live], self.pos[live], self.row_block[live]
        unknown = sup_ext[idx]  # the padding slot is not suppressed
        released = ~unknown & self.valid[live]
        val_e = self.value_ext[idx]
        lo_ext, hi_ext = np.append(lo, 0.0), np.append(hi, 0.0)  # n = padding slot, as in audit.py
        pushes = np.zeros(len(idx), dtype=bool)  # rows whose last result pushes against a released value
        active = np.arange(len(idx))
        mark_var = np.zeros(self.n + 1, dtype=bool)
        mark_row = np.zeros(len(idx) + 1, dtype=bool)
        above, below = val_e + 1e-9, val_e - 1e-9
        for step in range(_MAX_PASSES):
            every = len(active) == len(idx)  # all rows (the first passes): no need to gather them
            sub = idx if every else idx[active]
            lo_e, hi_e = lo_ext[sub], hi_ext[sub]
            v_lo, v_hi = self._row_bounds(lo_e, hi_e, pos if every else pos[active])
            if every:
                rel, over, under, on = released, above, below, unknown
            else:
                rel, over, under, on = released[active], above[active], below[active], unknown[active]
            pushes[active] = _any_per_row(rel & ((v_lo > over) | (v_hi < under)))
            targets = sub[on]
            old_lo, old_hi = lo_ext[targets], hi_ext[targets]
            np.maximum.at(lo_ext, targets, v_lo[on])
            np.minimum.at(hi_ext, targets, v_hi[on])
            now_lo, now_hi = lo_ext[targets], hi_ext[targets]
            big = (now_lo > old_lo + 1e-9) | (now_hi < old_hi - 1e-9)
            self.flags[step, self.var_block[targets[big]]] = True
            self.flags[step, row_block[pushes]] = True
            moved = (now_lo.view(np.int64) != old_lo.view(np.int64)) | (
                now_hi.view(np.int64) != old_hi.view(np.int64)
            )
            if not moved.any():
                # nothing moves again: every later pass reports just the pushing rows
                self.flags[step + 1 :, row_block[pushes]] = True
                break
            mark_var[targets[moved]] = True
            mv = np.flatnonzero(mark_var)
            mark_var[mv] = False
            logs.append((np.full(len(mv), step + 1, dtype=np.int64), mv, lo_ext[mv], hi_ext[mv]))
            active = self._rows_of(mv, row_of_eq, mark_row)
        self.moves = tuple(np.concatenate(parts) for parts in zip(*logs, strict=True))  # type: ignore[assignment]

    def _row_bounds(
        self, lo_e: np.ndarray, hi_e: np.ndarray, pos: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Each row's bound on each of its variables from the bounds of the others (`pos`: coefficient
        +1, else -1)."""
        if self.head_first and np.isfinite(lo_e).all():
            return _pass(lo_e, hi_e)
        t_lo = np.where(pos, lo_e, -hi_e)
        t_hi = np.where(pos, hi_e, -lo_e)
        new_lo, new_hi = _bounds_from_rest(t_lo, t_hi)
        return np.where(pos, new_lo, -new_hi), np.where(pos, new_hi, -new_lo)

    def _rows_of(self, moved_vars: np.ndarray, row_of_eq: np.ndarray, mark_row: np.ndarray) -> np.ndarray:
        """The live rows (ascending) holding any of `moved_vars`; `mark_row` is scratch, left all False."""
        starts, stops = self.inc_ptr[moved_vars], self.inc_ptr[moved_vars + 1]
        counts = stops - starts
        offsets = np.repeat(starts - np.cumsum(counts) + counts, counts) + np.arange(int(counts.sum()))
        mark_row[row_of_eq[self.inc_eq[offsets]]] = True  # -1 (not live) marks the spare last slot
        mark_row[-1] = False
        active = np.flatnonzero(mark_row)
        mark_row[active] = False
        return active


def _pass(lo_e: np.ndarray, hi_e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """New variable bounds from each row (head in column 0, members and padding after), as audit's
    where(pos, ...) / `_bounds_from_rest` / where(pos, ...) chain gives them when lower bounds are finite:
    a term's lower bound is infinite only for a member with no upper bound, its upper bound only for a
    head with none, and negating a negation gives the number back. (In place where audit makes copies.)"""
    lo_inf = np.isinf(hi_e)  # members whose term has no lower bound
    lo_inf[:, 0] = False
    head_inf = np.isinf(hi_e[:, 0])  # the head's term has no upper bound
    lo_fin = np.negative(hi_e)
    np.copyto(lo_fin, 0.0, where=lo_inf)
    lo_fin[:, 0] = lo_e[:, 0]
    hi_fin = np.negative(lo_e)
    hi_fin[:, 0] = np.where(head_inf, 0.0, hi_e[:, 0])
    rest_lo = np.subtract(lo_fin.sum(axis=1, keepdims=True), lo_fin, out=lo_fin)
    rest_hi = np.subtract(hi_fin.sum(axis=1, keepdims=True), hi_fin, out=hi_fin)
    others_lo_inf = _count_per_row(lo_inf)[:, None] - lo_inf > 0
    head_lo = -rest_hi[:, 0]
    head_hi = np.where(others_lo_inf[:, 0], np.inf, -rest_lo[:, 0])
    v_lo = rest_lo  # members: -(-rest_lo), or -inf past another infinite term
    np.copyto(v_lo, -np.inf, where=others_lo_inf)
    v_lo[:, 0] = head_lo
    v_hi = rest_hi  # members: -(-rest_hi), or inf when the head has no upper bound
    np.copyto(v_hi, np.inf, where=head_inf[:, None])
    v_hi[:, 0] = head_hi
    return v_lo, v_hi


def _any_per_row(mask: np.ndarray) -> np.ndarray:
    """mask.any(axis=1); rows of 8 bools read as one 8-byte word each (a bool is the byte 0 or 1)."""
    if mask.shape[1] == 8 and mask.flags.c_contiguous:
        return np.asarray(mask.view(np.uint64)[:, 0] != 0)
    return np.asarray(mask.any(axis=1))


def _count_per_row(mask: np.ndarray) -> np.ndarray:
    """np.count_nonzero(mask, axis=1), by popcount of 8-byte words where numpy has it."""
    if mask.shape[1] == 8 and mask.flags.c_contiguous and hasattr(np, "bitwise_count"):
        return np.asarray(np.bitwise_count(mask.view(np.uint64)[:, 0]), dtype=np.int64)
    return np.asarray(np.count_nonzero(mask, axis=1))
