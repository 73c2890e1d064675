"""Which values of a window are suppressed: the person threshold, the dominance rule, and complementary
suppression iterated to a fixpoint and then checked by the auditor until nothing suppressed is recoverable.

Rules per equation `head = sum(members)` (parent = children, total = categories):
- head released: the suppressed members are none, or at least two whose persons add up to k or more
  (and, for amounts, no single payer dominates them), so the difference reveals no small group;
- head suppressed: at least one member is suppressed too, or the head is their sum.
Each repair suppresses the smallest released value, which keeps as much of the city as it can.
"""

from __future__ import annotations

import numpy as np

from cityscreen.privacy.audit import determined
from cityscreen.privacy.structure import AMOUNT_METRICS, Structure

MAX_AUDIT_ROUNDS = 25


def primary(structure: Structure, min_persons: int, dominance_share: float) -> np.ndarray:
    """Values under the threshold of distinct persons, and amounts one payer dominates."""
    small = structure.persons < min_persons
    amount = np.array([m in AMOUNT_METRICS for m in structure.metric], dtype=bool)
    dominated = amount & (structure.top > dominance_share * np.maximum(structure.value, 0.0))
    return np.asarray(small | dominated)


class _Fixpoint:
    def __init__(self, structure: Structure, suppressed: np.ndarray, k: int, share: float) -> None:
        self.s = structure
        self.sup = suppressed
        self.k = k
        self.share = share
        self.eqs_of = structure.equations_of()
        self.is_amount = [m in AMOUNT_METRICS for m in structure.metric]

    def _residual_ok(self, suppressed_members: list[int]) -> bool:
        if len(suppressed_members) < 2:
            return False
        persons = int(self.s.persons[suppressed_members].sum())
        if persons < self.k:
            return False
        if self.is_amount[suppressed_members[0]]:
            value = float(self.s.value[suppressed_members].sum())
            top = float(self.s.top[suppressed_members].max())
            return top <= self.share * value
        return True

    def _smallest(self, candidates: list[int]) -> int | None:
        if not candidates:
            return None
        return min(candidates, key=lambda v: (self.s.value[v], self.s.persons[v], v))

    def suppress(self, v: int, pending: list[int]) -> None:
        if not self.sup[v]:
            self.sup[v] = True
            pending.extend(self.eqs_of[v])

    def run(self, pending: list[int]) -> None:
        while pending:
            e = pending.pop()
            head, members = self.s.equations[e]
            hidden = [m for m in members if self.sup[m]]
            shown = [m for m in members if not self.sup[m]]
            if not self.sup[head]:
                if hidden and not self._residual_ok(hidden):
                    pick = self._smallest(shown)
                    self.suppress(head if pick is None else pick, pending)
                    pending.append(e)
            elif not hidden:
                pick = self._smallest(shown)
                if pick is not None:
                    self.suppress(pick, pending)


def suppress(structure: Structure, min_persons: int, dominance_share: float) -> np.ndarray:
    """The suppression mask: primary suppressions plus every complementary one they need."""
    sup = primary(structure, min_persons, dominance_share)
    fix = _Fixpoint(structure, sup, min_persons, dominance_share)
    fix.run(list(range(len(structure.equations))))
    for _ in range(MAX_AUDIT_ROUNDS):
        leaks = determined(structure, sup)
        if not leaks:
            return sup
        pending: list[int] = []
        for v in leaks:
            _widen(fix, v, pending)
        fix.run(pending)
    # Still leaking after many repairs: hide every linked value of the affected blocks (always safe).
    for v in determined(structure, sup):
        block = structure.block[v]
        for u, b in enumerate(structure.block):
            if b == block:
                sup[u] = True
    return sup


def _widen(fix: _Fixpoint, v: int, pending: list[int]) -> None:
    """Suppress one more released value next to a recoverable one, in the equation with the smallest."""
    best: int | None = None
    for e in fix.eqs_of[v]:
        head, members = fix.s.equations[e]
        cand = fix._smallest([u for u in (head, *members) if not fix.sup[u]])
        if cand is not None and (best is None or fix.s.value[cand] < fix.s.value[best]):
            best = cand
    if best is not None:
        fix.suppress(best, pending)
