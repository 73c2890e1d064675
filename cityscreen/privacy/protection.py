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
that integer programming would pin; the attack tests run both (tests/support/interval_attacker.py).

Cheap first: a group whose equations hold no released value is safe without a program (one more person
in any of its cells changes only its values, so nothing is bounded above, and relabelling one person
between two categories of a breakdown, all suppressed, takes any category down to 0). For the others, bounds
propagated from the floors flag what they already can (that group is repaired before any program); a
group met again with the same mask keeps its answer, so later rounds solve only the groups a repair
touched. A repair only hides more, and a feasible point of the system before it (the newly hidden values
at their truth) is one of the system after it: so every value keeps, round to round, the interval its
feasible points showed, and a value settled stays settled (a mask that is not a superset starts over).
Then capped pushes: one program pushes every value in doubt toward the least move that would
settle it (a rise capped at the max that makes it wide, a fall floored at the min it needs, the other
values free), so a value that reaches its cap is settled and one program settles many; they repeat
while each settles something. Only values they leave in doubt get programs of their own (exact, and
warm: only the objective changes). Each solution is a feasible point (the caps only shrink the feasible
set), so every value it shows widens that value's known interval; tests/unit/test_protection_search.py
checks the answer against one fresh program per bound.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import numpy as np

from cityscreen.privacy.audit import _MAX_PASSES, _bounds_from_rest
from cityscreen.privacy.auditor import connected
from cityscreen.privacy.decided import DECIDED as _DECIDED
from cityscreen.privacy.decided import digest
from cityscreen.privacy.structure import AMOUNT_METRICS, Structure
from cityscreen.settings import PROTECTED_DIMENSIONS

_EPS = 1e-6
_BATCHES = 40  # capped pushes per group at most, before programs of one value each
_quiet = threading.Lock()
_banner_shown = False


def _highs() -> Any:
    """A silent HiGHS instance. Its first construction in a process prints a banner on file descriptor 1
    (from C++, before any option can be set): that write goes to /dev/null, so CLI output stays JSON."""
    global _banner_shown
    import highspy  # the solver only where it is used: the rest of the core stays numpy-only

    with _quiet:
        if _banner_shown:
            h = highspy.Highs()  # type: ignore[no-untyped-call]  # highspy has no annotations
        else:
            saved = os.dup(1)
            try:
                with open(os.devnull, "w") as null:
                    os.dup2(null.fileno(), 1)
                    h = highspy.Highs()  # type: ignore[no-untyped-call]  # highspy has no annotations
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
    widths: np.ndarray = np.maximum(top - np.ceil(lo - _EPS) + 1, 0)
    return widths


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
        protected = {}  # a window has a few hundred distinct keys: each is read once
        for _, _, key in structure.keys:
            if key not in protected:
                protected[key] = any(mk in key for mk in markers)
        self.presence = np.fromiter((protected[key] for _, _, key in structure.keys), dtype=bool, count=n) & (
            structure.persons < min_persons
        )
        self.count = np.array([m not in AMOUNT_METRICS for m in structure.metric], dtype=bool)
        self.cache: dict[bytes, np.ndarray] = {}
        # each value's interval shown by feasible points so far, valid while masks only grow
        self.seen_lo, self.seen_hi = structure.value.copy(), structure.value.copy()
        self.seen_mask: np.ndarray | None = None
        # values no mask of this structure can protect (temporal.JointAudit.given): never flagged, so
        # that propagation does not stop at them before the programs see the rest of their group
        self.ignore = np.zeros(n, dtype=bool)

    def flagged(self, suppressed: np.ndarray) -> list[int]:
        """Suppressed values that break a rule. Bounds propagated through the equations (with the floors,
        whole numbers for counts) contain the program's interval, so a value they already show breaking
        a rule does: its group is repaired first, with no program solved for it this round."""
        out: list[int] = []
        todo = []
        for vars_, eqs in self.groups(suppressed):
            # a group met before with the same mask passed propagation then and keeps its answer
            key = vars_.tobytes() + b"|" + eqs.tobytes()
            bad = self.cache.get(key)
            if bad is None:
                todo.append((vars_, eqs, key))
            else:
                out.extend(bad.tolist())
        if not todo:
            return sorted(out)
        lo, hi = self.propagated(suppressed, np.concatenate([e for _, e, _ in todo]))
        for vars_, eqs, key in todo:
            bad = vars_[self._failing(vars_, lo[vars_], hi[vars_])]
            if not len(bad):
                bad = self.cache[key] = self._decided(suppressed, vars_, eqs)
            out.extend(bad.tolist())
        return sorted(out)

    def _keep_seen(self, suppressed: np.ndarray) -> None:
        """Forget the feasible points seen unless `suppressed` hides all that the last mask hid."""
        mask = np.asarray(suppressed, dtype=bool)
        if self.seen_mask is not None and (self.seen_mask & ~mask).any():
            self.seen_lo, self.seen_hi = self.s.value.copy(), self.s.value.copy()
        self.seen_mask = mask.copy()

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
        if not len(useful):
            return []
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
        return np.asarray((pinned | present) & ~self.ignore[vars_])

    def _decided(self, suppressed: np.ndarray, vars_: np.ndarray, eqs: np.ndarray) -> np.ndarray:
        """The group's variables that break a rule. Which ones do is fixed by the group's programs alone
        (values in doubt get exact bounds), so a group with the same programs as one decided before in
        this process, in an earlier window or round, takes that answer: a minute of a stock repeats
        about half of the last minute's groups, two thirds of the gate's program time."""
        program = self._program(suppressed, vars_, eqs)
        content = digest(
            *program, self.s.value[vars_], self.floor[vars_], self.zero[vars_], self.presence[vars_],
            self.ignore[vars_], np.array([self.m]),
        )  # fmt: skip
        local = _DECIDED.get(content)
        if local is None:
            lo, hi = self._solved(suppressed, vars_, program)
            local = _DECIDED.put(content, np.flatnonzero(self._failing(vars_, lo, hi)))
        return np.asarray(vars_[local])

    def _program(
        self, suppressed: np.ndarray, vars_: np.ndarray, eqs: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The group's equations over its suppressed values: (row, column, coefficient) of each entry
        and each row's right-hand side."""
        value = self.s.value
        col = np.full(self.n + 1, -1, dtype=np.int64)
        col[vars_] = np.arange(len(vars_))
        idx, coef = self.idx[eqs], self.coef[eqs]
        hidden = np.append(np.asarray(suppressed, dtype=bool), False)[idx] & (idx < self.n)
        shown = ~hidden & (idx < self.n)
        # released values move to the right-hand side (whole numbers for counts: the sum is exact)
        rhs = -(np.where(shown, coef * np.append(value, 0.0)[idx], 0.0)).sum(axis=1)
        rows_a = np.nonzero(hidden)[0]
        return rows_a, col[idx[hidden]], coef[hidden], rhs

    def intervals(
        self, suppressed: np.ndarray, vars_: np.ndarray, eqs: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Known interval of each variable of one group: exact where a rule is in doubt, else widened
        only as far as the rules need (feasible points found on the way)."""
        return self._solved(suppressed, vars_, self._program(suppressed, vars_, eqs))

    def _solved(
        self,
        suppressed: np.ndarray,
        vars_: np.ndarray,
        program: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    ) -> tuple[np.ndarray, np.ndarray]:
        import highspy

        self._keep_seen(suppressed)
        truth = self.s.value[vars_]
        rows_a, cols_a, vals_a, rhs = program
        eqs_n = len(rhs)
        lower = self.floor[vars_].copy()
        upper = np.where(self.zero[vars_], 0.0, np.inf)
        rule_a = ~self.zero[vars_]
        presence = self.presence[vars_] & rule_a
        h = _highs()
        lp = highspy.HighsLp()
        lp.num_col_, lp.num_row_ = len(vars_), eqs_n
        lp.col_cost_ = np.zeros(len(vars_))
        lp.col_lower_, lp.col_upper_ = lower, upper
        lp.row_lower_, lp.row_upper_ = rhs, rhs
        order = np.lexsort((rows_a, cols_a))
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_ = np.searchsorted(cols_a[order], np.arange(len(vars_) + 1)).astype(np.int32)
        lp.a_matrix_.index_ = rows_a[order].astype(np.int32)
        lp.a_matrix_.value_ = vals_a[order].astype(float)
        h.passModel(lp)
        search = _Search(h, highspy, truth, lower, upper, self.m, presence)
        search.lo, search.hi = self.seen_lo[vars_], self.seen_hi[vars_]  # copies (fancy indexing)
        lo, hi = search.run(rule_a)
        self.seen_lo[vars_], self.seen_hi[vars_] = lo, hi
        return lo, hi


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

    def box(self, cand: np.ndarray, rise: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Bounds that cap each value of `cand` at the least move that settles it (a rise at the max that
        makes it wide, a fall at the min it needs), the others free. The caps only shrink the feasible
        set: a solution inside them is a feasible point of the observer's system."""
        box_lo, box_hi = self.lower.copy(), self.upper.copy()
        lo, hi, truth = self.lo[cand], self.hi[cand], self.truth[cand]
        top = np.maximum(np.ceil(lo - _EPS) + self.m - 1, truth)
        empty = self.presence[cand] & (lo > _EPS)
        bottom = np.where(empty, 0.0, np.floor(hi + _EPS) - self.m + 1)
        bottom = np.minimum(np.maximum(bottom, box_lo[cand]), truth)
        box_hi[cand] = np.where(rise, top, box_hi[cand])
        box_lo[cand] = np.where(rise, box_lo[cand], bottom)
        return box_lo, box_hi

    def push(self, cand: np.ndarray, rise: np.ndarray) -> None:
        """One program: each value of `cand` pushed its way, capped where it would settle."""
        n = len(self.truth)
        self.h.changeColsBounds(n, self.all, *self.box(cand, rise))
        cost = np.zeros(n)
        cost[cand] = np.where(rise, 1.0, -1.0)
        self.solve(cost, maximize=True)

    def run(self, rule_a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = len(self.truth)
        # capped pushes of everything in doubt at once (one program settles many values), while each
        # settles something; a value pushed both ways picks one at random per program
        rng = np.random.default_rng(0)  # the same pushes for the same group: a replay gives the same mask
        for _ in range(_BATCHES):
            up, down = self.doubt(rule_a)
            cand = np.flatnonzero(up | down)
            if not len(cand):
                break
            self.push(cand, up[cand] & (~down[cand] | (rng.random(len(cand)) < 0.5)))
            up, down = self.doubt(rule_a)
            if np.count_nonzero(up | down) == len(cand):
                break
        self.h.changeColsBounds(n, self.all, self.lower, self.upper)
        # then each value still in doubt gets its exact bound (objective changes only: warm starts)
        for j in np.flatnonzero(np.logical_or(*self.doubt(rule_a))).tolist():
            if self.doubt(rule_a)[0][j]:
                self.exact(j, rising=True)
            if self.doubt(rule_a)[1][j]:
                self.exact(j, rising=False)
        return self.lo, self.hi

    def exact(self, j: int, *, rising: bool) -> None:
        cost = np.zeros(len(self.truth))
        cost[j] = 1.0
        x = self.solve(cost, maximize=rising)
        if rising:
            self.exact_hi[j] = True
            if x is None and self.h.getModelStatus() == self.hs.HighsModelStatus.kUnbounded:
                self.hi[j] = np.inf
        else:
            self.exact_lo[j] = True
