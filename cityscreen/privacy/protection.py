"""Protection intervals: what an observer who knows everything public can prove about a suppressed value.

The observer knows the released values, the equations of the layout (structure.py: hierarchy, breakdown
sums, transit mode = its lines), that values are whole numbers (counts) and never negative, and what the
key set says (a present total or line is at least 1, a mode with no line present is 0). Per group of
suppressed values linked by equations, a linear program (HiGHS) bounds each value from below and above.
The gate repairs until, for every suppressed value:
- it is not pinned: its interval holds at least `min_whole_numbers` whole numbers (3 by default);
- a category of a protected breakdown (gender, age band, origin, merchant category) with fewer than k
  persons is not proven present: its lower bound stays 0.
Values the key set alone fixes at 0 (a mode with no line present) are as public as an absent key and are
not counted. The linear relaxation's interval contains the whole-number one, so it can only pass a value
that integer programming would pin; the attack tests run both (tests/unit/interval_attacker.py).

Cheap first: a group whose equations hold no released value is safe without a program (one more person
in any of its cells changes only its values, so nothing is bounded above, and relabelling one person
between two categories of a breakdown, all suppressed, takes any category down to 0). For the others, bounds
propagated from the floors flag what they already can (that group is repaired before any program).
Then programs that push a random half of the values in doubt, each up or down inside a box around the
truth, certify most values at once; only values they leave in doubt get programs of their own. Each
solution is a feasible point, so every value it shows widens that value's known interval.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import numpy as np

from cityscreen.privacy.audit import _MAX_PASSES, _bounds_from_rest
from cityscreen.privacy.auditor import connected
from cityscreen.privacy.structure import AMOUNT_METRICS, Structure
from cityscreen.settings import PROTECTED_DIMENSIONS

_EPS = 1e-6
_BATCHES = 40  # random pushes per group before programs of one value each
_PART = 2  # each push moves this share (1/_PART) of the values in doubt
_quiet = threading.Lock()
_banner_shown = False


def _highs() -> Any:
    """A silent HiGHS instance. Its first construction in a process prints a banner on file descriptor 1
    (from C++, before any option can be set): that write goes to /dev/null, so CLI output stays JSON."""
    global _banner_shown
    import highspy  # the solver only where it is used: the rest of the core stays numpy-only

    with _quiet:
        if _banner_shown:
            h = highspy.Highs()
        else:
            saved = os.dup(1)
            try:
                with open(os.devnull, "w") as null:
                    os.dup2(null.fileno(), 1)
                    h = highspy.Highs()
            finally:
                os.dup2(saved, 1)
                os.close(saved)
            _banner_shown = True
    h.setOptionValue("output_flag", False)
    # each program differs from the last only in its objective: the last basis stays feasible, so the
    # primal simplex goes on from it (no presolve, which would start over)
    h.setOptionValue("presolve", "off")
    h.setOptionValue("simplex_strategy", 4)
    return h


def whole_numbers(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """How many whole numbers each interval [lo, hi] holds (a large number when hi is infinite)."""
    top = np.where(np.isinf(hi), 1e18, np.floor(hi + _EPS))
    return np.maximum(top - np.ceil(lo - _EPS) + 1, 0)


class Protection:
    """`flagged(mask)`: suppressed values an observer pins or proves present, for successive masks of one
    structure (the rounds of one suppression); a group's answer is cached while its mask is unchanged."""

    def __init__(
        self,
        structure: Structure,
        idx: np.ndarray,
        coef: np.ndarray,
        *,
        min_persons: int,
        min_whole_numbers: int = 3,
        dimensions: tuple[str, ...] | list[str] = PROTECTED_DIMENSIONS,
    ) -> None:
        n = len(structure.keys)
        self.s, self.n, self.idx, self.coef = structure, n, idx, coef
        self.valid = idx < n
        self.m = min_whole_numbers
        self.floor = structure.floor if structure.floor is not None else np.zeros(n)
        self.zero = structure.known_zero if structure.known_zero is not None else np.zeros(n, dtype=bool)
        markers = tuple(f"|{d}=" for d in dimensions)
        self.presence = np.array(
            [any(mk in key for mk in markers) for _, _, key in structure.keys], dtype=bool
        ) & (structure.persons < min_persons)
        self.count = np.array([m not in AMOUNT_METRICS for m in structure.metric], dtype=bool)
        self.cache: dict[bytes, np.ndarray] = {}

    def flagged(self, suppressed: np.ndarray) -> list[int]:
        """Suppressed values that break a rule. Bounds propagated through the equations (with the floors,
        whole numbers for counts) contain the program's interval, so a value they already show breaking
        a rule does: its group is repaired first, with no program solved for it this round."""
        out: list[int] = []
        groups = self.groups(suppressed)
        if not groups:
            return out
        lo, hi = self.propagated(suppressed, np.concatenate([e for _, e in groups]))
        for vars_, eqs in groups:
            bad = vars_[self._failing(vars_, lo[vars_], hi[vars_])]
            if not len(bad):
                key = vars_.tobytes() + b"|" + eqs.tobytes()
                bad = self.cache.get(key)
                if bad is None:
                    g_lo, g_hi = self.intervals(suppressed, vars_, eqs)
                    bad = self.cache[key] = vars_[self._failing(vars_, g_lo, g_hi)]
            out.extend(bad.tolist())
        return sorted(out)

    def propagated(self, suppressed: np.ndarray, eqs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Outer bounds of every value from `eqs`: released values exact, suppressed ones from their floor
        (0 for a known zero's top) through every equation to a fixpoint, rounded inwards for counts."""
        n, value = self.n, self.s.value
        lo = np.where(suppressed, self.floor, value)
        hi = np.where(suppressed, np.where(self.zero, 0.0, np.inf), value)
        idx, pos = self.idx[eqs], self.coef[eqs] > 0
        for _ in range(_MAX_PASSES):
            lo_e, hi_e = np.append(lo, 0.0)[idx], np.append(hi, 0.0)[idx]
            t_lo = np.where(pos, lo_e, -hi_e)  # each term coef * x lies in [t_lo, t_hi]; they sum to 0
            t_hi = np.where(pos, hi_e, -lo_e)
            new_lo, new_hi = _bounds_from_rest(t_lo, t_hi)
            nlo, nhi = np.append(lo, 0.0), np.append(hi, 0.0)
            np.maximum.at(nlo, idx, np.where(pos, new_lo, -new_hi))
            np.minimum.at(nhi, idx, np.where(pos, new_hi, -new_lo))
            nlo = np.where(self.count & suppressed, np.ceil(nlo[:n] - _EPS), nlo[:n])
            nhi = np.where(self.count & suppressed, np.floor(nhi[:n] + _EPS), nhi[:n])
            moved = bool(((nlo > lo + 1e-9) | (nhi < hi - 1e-9)).any())
            lo, hi = np.where(suppressed, nlo, lo), np.where(suppressed, nhi, hi)
            if not moved:
                break
        return lo, hi

    def groups(self, suppressed: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """(suppressed variables, equations) of each linked group with a released value in an equation."""
        sup_ext = np.append(np.asarray(suppressed, dtype=bool), False)
        on = sup_ext[self.idx] & self.valid
        touched = np.flatnonzero(on.any(axis=1))
        if not len(touched):
            return []
        on_t = on[touched]
        label = connected(self.n, self.idx[touched], on_t)
        open_eq = ~(on_t | ~self.valid[touched]).all(axis=1)  # holds a released value
        eq_label = label[self.idx[touched, on_t.argmax(axis=1)]]  # the label of a suppressed entry
        useful = np.unique(eq_label[open_eq])
        vars_all = np.flatnonzero(suppressed)
        vars_all = vars_all[np.isin(label[vars_all], useful)]
        vars_all = vars_all[np.argsort(label[vars_all], kind="stable")]
        keep = np.isin(eq_label, useful)
        e_order = np.argsort(eq_label[keep], kind="stable")
        eqs_all, eq_sorted = touched[keep][e_order], eq_label[keep][e_order]
        v_split = np.searchsorted(label[vars_all], useful, side="right")[:-1]
        e_split = np.searchsorted(eq_sorted, useful, side="right")[:-1]
        return list(zip(np.split(vars_all, v_split), np.split(eqs_all, e_split), strict=True))

    def _failing(self, vars_: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        pinned = (whole_numbers(lo, hi) < self.m) & ~self.zero[vars_]
        present = self.presence[vars_] & (lo > _EPS)
        return np.asarray(pinned | present)

    def intervals(
        self, suppressed: np.ndarray, vars_: np.ndarray, eqs: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Known interval of each variable of one group: exact where a rule is in doubt, else widened
        only as far as the rules need (feasible points found on the way)."""
        import highspy

        value = self.s.value
        truth = value[vars_]
        col = np.full(self.n + 1, -1, dtype=np.int64)
        col[vars_] = np.arange(len(vars_))
        rows, cols, vals = [], [], []
        rhs = np.zeros(len(eqs))
        for r, e in enumerate(eqs.tolist()):
            for v, c in zip(self.idx[e].tolist(), self.coef[e].tolist(), strict=True):
                if v >= self.n:
                    continue
                if suppressed[v]:
                    rows.append(r)
                    cols.append(col[v])
                    vals.append(c)
                else:
                    rhs[r] -= c * value[v]
        lower = self.floor[vars_].copy()
        upper = np.where(self.zero[vars_], 0.0, np.inf)
        h = _highs()
        lp = highspy.HighsLp()
        lp.num_col_, lp.num_row_ = len(vars_), len(eqs)
        lp.col_cost_ = np.zeros(len(vars_))
        lp.col_lower_, lp.col_upper_ = lower, upper
        lp.row_lower_, lp.row_upper_ = rhs, rhs
        order = np.lexsort((np.asarray(rows), np.asarray(cols)))
        cols_sorted = np.asarray(cols, dtype=np.int64)[order]
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_ = np.searchsorted(cols_sorted, np.arange(len(vars_) + 1)).astype(np.int32)
        lp.a_matrix_.index_ = np.asarray(rows, dtype=np.int32)[order]
        lp.a_matrix_.value_ = np.asarray(vals, dtype=float)[order]
        h.passModel(lp)
        return _Search(h, highspy, truth, lower, upper, self.m, self.presence[vars_] & ~self.zero[vars_]).run(
            ~self.zero[vars_]
        )


class _Search:
    """Bounds by programs over one group: batch pushes first, then one program per value in doubt."""

    def __init__(
        self,
        h: Any,
        hs: Any,
        truth: np.ndarray,
        lower: np.ndarray,
        upper: np.ndarray,
        m: int,
        presence: np.ndarray,
    ) -> None:
        self.h, self.hs, self.truth, self.lower, self.upper, self.m = h, hs, truth, lower, upper, m
        self.presence = presence
        self.lo, self.hi = truth.copy(), truth.copy()  # the truth is a feasible point
        self.exact_lo = np.zeros(len(truth), dtype=bool)
        self.exact_hi = np.zeros(len(truth), dtype=bool)
        self.all = np.arange(len(truth), dtype=np.int32)

    def doubt(self, rule_a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Values whose interval so far fails a rule: (need a larger max, need a smaller min)."""
        short = rule_a & (whole_numbers(self.lo, self.hi) < self.m)
        present = self.presence & (self.lo > _EPS)
        return short & ~self.exact_hi, (short | present) & ~self.exact_lo

    def solve(self, cost: np.ndarray, maximize: bool) -> np.ndarray | None:
        h, hs = self.h, self.hs
        h.changeColsCost(len(cost), self.all, cost)
        h.changeObjectiveSense(hs.ObjSense.kMaximize if maximize else hs.ObjSense.kMinimize)
        h.run()
        if h.getModelStatus() not in (hs.HighsModelStatus.kOptimal, hs.HighsModelStatus.kUnbounded):
            h.clearSolver()  # a warm start gone astray (rare): this program from scratch
            h.run()
        if h.getModelStatus() != hs.HighsModelStatus.kOptimal:
            return None
        x = np.asarray(h.getSolution().col_value)
        np.minimum(self.lo, x, out=self.lo)
        np.maximum(self.hi, x, out=self.hi)
        return x

    def run(self, rule_a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = len(self.truth)
        # batches inside a box around the truth (so every program is bounded), each pushing the values
        # in doubt in random directions: siblings that must trade (a released parent) split both ways
        box_lo = np.where(self.presence, self.lower, np.maximum(self.lower, self.truth - self.m))
        box_hi = np.minimum(self.upper, self.truth + self.m)
        self.h.changeColsBounds(n, self.all, box_lo, box_hi)
        rng = np.random.default_rng(0)  # the same pushes for the same group: a replay gives the same mask
        stale = 0
        for _ in range(_BATCHES):
            up, down = self.doubt(rule_a)
            cand = np.flatnonzero(up | down)
            if not len(cand) or stale == 3:
                break
            # a few values at a time, the rest free to give way (pushing all at once pits siblings
            # against each other under a released parent)
            pick = rng.choice(cand, size=max(1, len(cand) // _PART), replace=False)
            rise = up[pick] & (~down[pick] | (rng.random(len(pick)) < 0.5))
            weight = np.zeros(n)
            weight[pick] = np.where(rise, 1.0, -1.0)
            self.solve(weight, maximize=True)
            up, down = self.doubt(rule_a)
            stale = stale + 1 if np.count_nonzero(up | down) == len(cand) else 0
        self.h.changeColsBounds(n, self.all, self.lower, self.upper)
        for j in np.flatnonzero(np.logical_or(*self.doubt(rule_a))).tolist():
            cost = np.zeros(n)
            cost[j] = 1.0
            if self.doubt(rule_a)[0][j]:
                x = self.solve(cost, maximize=True)
                self.exact_hi[j] = True
                if x is None and self.h.getModelStatus() == self.hs.HighsModelStatus.kUnbounded:
                    self.hi[j] = np.inf
            if self.doubt(rule_a)[1][j]:
                self.solve(cost, maximize=False)
                self.exact_lo[j] = True
        return self.lo, self.hi
