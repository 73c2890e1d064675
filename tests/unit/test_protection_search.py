"""The gate's protection search (capped pushes, then exact programs where a value stays in doubt) against
a plain reference: for every suppressed value of a group, its own minimum and maximum solved from
scratch. On random masks over small synthetic cities:
- every value the search shows is a feasible point's value (inside the reference interval): the search
  never claims an interval wider than the observer's;
- it flags exactly the values whose reference interval breaks a rule (no pinned value or proven
  category passes, no wide one is flagged);
- bounds propagated from the floors contain the reference interval (so what they flag is pinned).
"""

from __future__ import annotations

import highspy
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from cityscreen.aggregates import WindowAggregate
from cityscreen.demography import BREAKDOWN_CATEGORIES
from cityscreen.privacy.auditor import equation_table
from cityscreen.privacy.protection import Protection
from cityscreen.privacy.structure import build_structure
from cityscreen.privacy.suppression import primary
from cityscreen.privacy.synthetic import synthetic_windows
from tests.support.factories import SIBLINGS, make_aggregate

SEARCH = settings(max_examples=16, derandomize=True, database=None, deadline=None)
MAX_GROUP = 130  # reference programs are solved one by one: small groups keep the test short


def reference(p: Protection, sup: np.ndarray, vars_: np.ndarray, eqs: np.ndarray) -> tuple[np.ndarray, ...]:
    """Min and max of each variable of the group, each from a fresh program (no warm start)."""
    value = p.s.value
    col = {v: i for i, v in enumerate(vars_.tolist())}
    a = np.zeros((len(eqs), len(vars_)))
    rhs = np.zeros(len(eqs))
    for r, e in enumerate(eqs.tolist()):
        for v, c in zip(p.idx[e].tolist(), p.coef[e].tolist(), strict=True):
            if v < p.n:
                if sup[v]:
                    a[r, col[v]] = c
                else:
                    rhs[r] -= c * value[v]
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = len(vars_), len(eqs)
    lp.col_cost_ = np.zeros(len(vars_))
    lp.col_lower_, lp.col_upper_ = p.floor[vars_], np.where(p.zero[vars_], 0.0, np.inf)
    lp.row_lower_ = lp.row_upper_ = rhs
    cols = np.asarray(a != 0).T  # column-wise entries
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = np.concatenate(([0], np.cumsum(cols.sum(axis=1)))).astype(np.int32)
    lp.a_matrix_.index_ = np.nonzero(cols)[1].astype(np.int32)
    lp.a_matrix_.value_ = a.T[cols]
    lo, hi = np.zeros(len(vars_)), np.zeros(len(vars_))
    for j in range(len(vars_)):
        for sense, out in ((highspy.ObjSense.kMinimize, lo), (highspy.ObjSense.kMaximize, hi)):
            h = highspy.Highs()  # type: ignore[no-untyped-call]  # highspy has no annotations
            h.setOptionValue("output_flag", False)
            h.passModel(lp)
            h.changeColCost(j, 1.0)
            h.changeObjectiveSense(sense)
            h.run()
            status = h.getModelStatus()
            if status == highspy.HighsModelStatus.kUnbounded:
                out[j] = np.inf
            else:
                assert status == highspy.HighsModelStatus.kOptimal, status
                out[j] = h.getSolution().col_value[j]
    return lo, hi


def small_city(seed: int, persons: int) -> WindowAggregate:
    """Persons in the seven cells under one res-7 cell, few categories each (so that some values are
    released and groups stay small), and a few payments."""
    rng = np.random.default_rng(seed)
    ages, origins = BREAKDOWN_CATEGORIES["age_band"][:3], BREAKDOWN_CATEGORIES["origin"][:3]
    people: dict[str, list[tuple[str, str, str]]] = {}
    for _ in range(persons):
        cell = SIBLINGS[min(int(rng.exponential(1.2)), len(SIBLINGS) - 1)]
        person = (str(rng.choice(["F", "M"])), str(rng.choice(ages)), str(rng.choice(origins)))
        people.setdefault(cell, []).append(person)
    pays = [
        (SIBLINGS[int(rng.integers(3))], int(rng.integers(40)), str(rng.choice(["food", "retail"])), 5.0)
        for _ in range(persons // 3)
    ]
    return make_aggregate(people, payments=pays)


@SEARCH
@given(
    seed=st.integers(0, 10_000),
    persons=st.integers(60, 600),
    extra=st.floats(0.0, 0.3),
    k=st.sampled_from([10, 20]),
    synthetic=st.sampled_from([False, False, True]),
)
def test_the_search_flags_exactly_what_the_reference_programs_pin(
    seed: int, persons: int, extra: float, k: int, synthetic: bool
) -> None:
    if synthetic:  # the generator's city: most of it hidden, groups large (only small ones checked)
        window = synthetic_windows(persons=persons // 2, windows=1, seed=seed)[0].aggregate
    else:
        window = small_city(seed, persons)
    structure = build_structure(window)
    rng = np.random.default_rng(seed)
    sup = primary(structure, k, 0.5) | (rng.random(len(structure.keys)) < extra)
    idx, coef = equation_table(structure)
    p = Protection(structure, idx, coef, min_persons=k)
    checked = 0
    groups = p.groups(sup)
    if not groups:
        return
    out_lo, out_hi = p.propagated(sup, np.concatenate([e for _, e in groups]))
    for vars_, eqs in groups:
        if len(vars_) > MAX_GROUP:
            continue
        ref_lo, ref_hi = reference(p, sup, vars_, eqs)
        lo, hi = p.intervals(sup, vars_, eqs)
        tol = 1e-6 * np.maximum(1.0, np.abs(ref_hi[np.isfinite(ref_hi)]).max(initial=1.0))
        assert (lo >= ref_lo - tol).all() and (hi <= ref_hi + tol).all(), "a point outside the system"
        assert (out_lo[vars_] <= ref_lo + tol).all() and (out_hi[vars_] >= ref_hi - tol).all()
        assert p._failing(vars_, lo, hi).tolist() == p._failing(vars_, ref_lo, ref_hi).tolist()
        checked += 1
    assert checked or all(len(v) > MAX_GROUP for v, _ in groups)


def _inside_reference(p: Protection, sup: np.ndarray) -> int:
    """Check every small group's intervals from `p` (what it carries included) against fresh programs."""
    checked = 0
    for vars_, eqs in p.groups(sup):
        if len(vars_) <= MAX_GROUP:
            ref_lo, ref_hi = reference(p, sup, vars_, eqs)
            lo, hi = p.intervals(sup, vars_, eqs)
            tol = 1e-6 * np.maximum(1.0, np.abs(ref_hi[np.isfinite(ref_hi)]).max(initial=1.0))
            assert (lo >= ref_lo - tol).all() and (hi <= ref_hi + tol).all(), "a point outside the system"
            checked += 1
    return checked


@settings(max_examples=8, derandomize=True, database=None, deadline=None)
@given(seed=st.integers(0, 10_000), persons=st.integers(60, 600), k=st.sampled_from([10, 20]))
def test_intervals_carried_over_growing_masks_are_points_of_each_later_system(
    seed: int, persons: int, k: int
) -> None:
    """The rounds of one suppression only hide more: the feasible points one Protection keeps from the
    rounds before are points of the later system, so it flags what a new Protection would. A mask that
    is not a superset drops them (they may lie outside its system)."""
    structure = build_structure(small_city(seed, persons))
    idx, coef = equation_table(structure)
    rng = np.random.default_rng(seed)
    sup = primary(structure, k, 0.5)
    carried = Protection(structure, idx, coef, min_persons=k)
    checked = 0
    for _ in range(3):
        assert carried.flagged(sup) == Protection(structure, idx, coef, min_persons=k).flagged(sup)
        checked += _inside_reference(carried, sup)
        sup = sup | (rng.random(len(sup)) < 0.15)
    shrunk = primary(structure, k, 0.5)
    checked += _inside_reference(carried, shrunk)
    assert checked
