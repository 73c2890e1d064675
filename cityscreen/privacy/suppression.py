"""Which values of a window are suppressed: the person threshold, the dominance rule, and complementary
suppression iterated to a fixpoint and then checked by the auditor until nothing suppressed is recoverable.

Rules per equation `head = sum(members)` (parent = children, total = categories):
- head released: the suppressed members are none, or at least two whose persons add up to k or more
  (and, for amounts, no single payer dominates them), so the difference reveals no small group;
- head suppressed: at least one member is suppressed too, or the head is their sum.
Each repair suppresses the smallest released value, which keeps as much of the city as it can.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cityscreen.privacy.auditor import Auditor
from cityscreen.privacy.protection import Protection
from cityscreen.privacy.structure import AMOUNT_METRICS, Structure
from cityscreen.privacy.temporal import JointAudit, Previous, carried
from cityscreen.settings import PROTECTED_DIMENSIONS

MAX_AUDIT_ROUNDS = 25
# Across time the joint audit flags a value and most of its neighbours at once (one change of a hidden
# value bounds the whole hidden rest of its equations): one repair per neighbourhood a round, then the
# audit again, kept 0.86 to 0.88 of the res-8 persons at the morning peak where widening every flagged
# value at once kept 0.73 to 0.86 (docs/privacy.md), in more rounds (about 65 at most there).
MAX_JOINT_ROUNDS = 100


def primary(structure: Structure, min_persons: int, dominance_share: float) -> np.ndarray:
    """Values under the threshold of distinct persons, and amounts one payer dominates."""
    small = structure.persons < min_persons
    amount = np.array([m in AMOUNT_METRICS for m in structure.metric], dtype=bool)
    dominated = amount & (structure.top > dominance_share * np.maximum(structure.value, 0.0))
    return np.asarray(small | dominated)


class _Fixpoint:
    """The repair loop over plain Python lists (numpy scalars are slow one at a time); `sup` stays the
    mask the caller sees. Sums of amounts are the ones numpy does (left to right under 8 terms)."""

    def __init__(
        self, structure: Structure, suppressed: np.ndarray, k: int, share: float, auditor: Auditor
    ) -> None:
        self.s = structure
        self.sup = suppressed
        self.hidden: list[bool] = suppressed.tolist()
        self.k = k
        self.share = share
        # the equations of variable v, ascending (as Structure.equations_of lists them)
        self.inc_eq: list[int] = auditor.inc_eq.tolist()
        self.inc_ptr: list[int] = auditor.inc_ptr.tolist()
        self.is_amount = [m in AMOUNT_METRICS for m in structure.metric]
        self.value: list[float] = structure.value.tolist()
        self.persons: list[int] = structure.persons.tolist()
        self.top: list[float] = structure.top.tolist()
        self.order = _pick_order(structure.value, structure.persons)
        # a mode none of whose lines is present is 0 for anyone who reads the key set and the public
        # network map: it stays hidden (it is under k), but as a known value it hides nothing, so it
        # neither needs a complement nor serves as one (counted as hidden, it took a bus-only stop's
        # total, bus mode and line with it: 61 of 1,678 res-8 tap-in totals of k or more were released)
        zero = structure.known_zero
        self.public: list[bool] = [False] * len(self.hidden) if zero is None else zero.tolist()

    def _residual_ok(self, suppressed_members: list[int]) -> bool:
        if len(suppressed_members) < 2:
            return False
        persons = 0
        for m in suppressed_members:
            persons += self.persons[m]
        if persons < self.k:
            return False
        if self.is_amount[suppressed_members[0]]:
            if len(suppressed_members) < 8:  # numpy sums fewer than 8 terms left to right, like this
                value = 0.0
                for m in suppressed_members:
                    value += self.value[m]
            else:  # numpy's pairwise sum, as the plain version did
                value = float(self.s.value[suppressed_members].sum())
            top = max(map(self.top.__getitem__, suppressed_members))
            return top <= self.share * value
        return True

    def _smallest(self, candidates: list[int]) -> int | None:
        if not candidates:
            return None
        if self.order is not None:
            return min(candidates, key=self.order.__getitem__)
        value, persons = self.value, self.persons
        return min(candidates, key=lambda v: (value[v], persons[v], v))

    def eqs_of(self, v: int) -> list[int]:
        return self.inc_eq[self.inc_ptr[v] : self.inc_ptr[v + 1]]

    def suppress(self, v: int, pending: list[int]) -> None:
        if not self.hidden[v]:
            self.hidden[v] = True
            self.sup[v] = True
            pending.extend(self.inc_eq[self.inc_ptr[v] : self.inc_ptr[v + 1]])

    def run(self, pending: list[int]) -> None:
        flag, public = self.hidden, self.public
        equations = self.s.equations
        residual_ok, smallest, hide = self._residual_ok, self._smallest, self.suppress
        while pending:
            e = pending.pop()
            head, members = equations[e]
            hidden = [m for m in members if flag[m] and not public[m]]
            if not flag[head]:
                if hidden and not residual_ok(hidden):
                    pick = smallest([m for m in members if not flag[m] and not public[m]])
                    hide(head if pick is None else pick, pending)
                    pending.append(e)
            elif not hidden:
                pick = smallest([m for m in members if not flag[m] and not public[m]])
                if pick is not None:
                    hide(pick, pending)


def _pick_order(value: np.ndarray, persons: np.ndarray) -> list[int] | None:
    """Each variable's place in the order `_smallest` picks by, (value, persons, id), so that a min
    compares one int per candidate; None when a value is NaN (NaN keys do not order, so only the plain
    comparisons in candidate order say what min returns)."""
    if np.isnan(value).any():
        return None
    n = len(value)
    place = np.empty(n, dtype=np.int64)
    place[np.lexsort((np.arange(n), persons, value))] = np.arange(n)  # -0.0 ties 0.0, as in tuples
    return list(place.tolist())


def suppress(
    structure: Structure,
    min_persons: int,
    dominance_share: float,
    *,
    min_whole_numbers: int = 3,
    dimensions: tuple[str, ...] | list[str] = PROTECTED_DIMENSIONS,
    previous: Previous | None = None,
) -> np.ndarray:
    """The suppression mask: primary suppressions plus every complementary one they need, until the
    auditor recovers nothing and every protection interval holds (protection.py). With `previous` (the
    window released just before, same span), also across the two windows (temporal.py)."""
    sup = primary(structure, min_persons, dominance_share)
    auditor = Auditor(structure)  # same answers as audit.determined, cached across the rounds
    kw: dict[str, Any] = {
        "min_persons": min_persons, "min_whole_numbers": min_whole_numbers, "dimensions": dimensions
    }  # fmt: skip
    rules: Protection | JointAudit
    if previous is None:
        rules, known = Protection(structure, auditor.idx, auditor.coef, **kw), None
    else:
        held, known = carried(previous, structure)
        sup |= held
        rules = JointAudit(previous, structure, **kw)
        rules.given(known)

    def leaks() -> list[int]:
        # A value the equations determine has a program interval of one number, so the protection
        # rules flag everything the equation auditor (audit.determined, tested against the result)
        # would, and more: its rank test is not run again here (with transit mode = its lines, most
        # transit groups lost their exact proof of freedom and cost a dense eigh per round)
        return rules.flagged(sup if known is None else sup & ~known)

    fix = _Fixpoint(structure, sup, min_persons, dominance_share, auditor)
    if known is not None:  # released last window and unchanged: known, like a known zero
        fix.public = [p or q for p, q in zip(fix.public, known.tolist(), strict=True)]
    fix.run(list(range(len(structure.equations))))
    for _ in range(MAX_AUDIT_ROUNDS if previous is None else MAX_JOINT_ROUNDS):
        found = leaks()
        if not found:
            return sup
        pending: list[int] = []
        touched: set[int] = set()
        for v in found:
            if previous is not None and touched.intersection(fix.eqs_of(v)):
                continue  # across time: one repair per neighbourhood and round (see MAX_JOINT_ROUNDS)
            start = len(pending)
            _widen(fix, v, pending)
            if len(pending) > start:
                touched.update(fix.eqs_of(v), pending[start:])
        if not pending:
            break  # nothing left to widen: hide the blocks below
        fix.run(pending)
    # Still leaking after many repairs: hide every linked value of the affected blocks (always safe).
    leaking = {structure.block[v] for v in leaks()}
    for u, b in enumerate(structure.block):
        if b in leaking:
            sup[u] = True
    return sup


def _widen(fix: _Fixpoint, v: int, pending: list[int]) -> None:
    """Suppress one more released value next to a recoverable one, in the equation with the smallest.
    When every equation of `v` is all hidden, what bounds it comes from further off: the nearest
    equations (through hidden values) that hold a released value are widened instead. Each equation is
    read once (one seen again at a later level is all hidden, or the search would have stopped)."""
    frontier, seen, seen_eq = [v], {v}, set()
    equations, hidden, value = fix.s.equations, fix.hidden, fix.value
    while frontier:
        best: int | None = None
        nxt: list[int] = []
        for u in frontier:
            for e in fix.eqs_of(u):
                if e in seen_eq:
                    continue
                seen_eq.add(e)
                head, members = equations[e]
                cand = fix._smallest([w for w in (head, *members) if not hidden[w] and not fix.public[w]])
                if cand is not None and (best is None or value[cand] < value[best]):
                    best = cand
                for w in (head, *members):
                    if hidden[w] and w not in seen:
                        seen.add(w)
                        nxt.append(w)
        if best is not None:
            fix.suppress(best, pending)
            return
        frontier = nxt
