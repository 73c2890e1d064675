"""The project's interval attacker: from frames alone, the feasible interval of every suppressed value,
by linear programming and then integer programming (HiGHS), with everything a reader of the frames knows.

Knowledge, all derived here from frames and the public city file (nothing from the gate's structure):
- the equations of the layout (privacy_helpers: parent = children, total = each breakdown's parts);
- transit mode = the sum of its lines present in the cell (the city file says which line is a metro
  line; every other line is a bus line), and a mode with no line present is 0;
- a key present in a frame, even as null, had data: a total of a count, and a transit line, is >= 1;
- values are never negative, and counts are whole numbers (amounts are not).
Random objectives first find feasible points: a value seen spanning 3 whole numbers is settled by them.
Each other suppressed value gets min and max by linear programming; where the optimum is not a whole
number on a count, integer programming gives the exact whole-number bound instead (where it is one, the
linear bound is the integer one). Groups of unknowns linked by equations are solved apart, and windows
in parallel.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import partial

import highspy
import numpy as np

from cityscreen.aggregates import Measure, WindowAggregate, parse_stat_key
from cityscreen.frames import Frame
from tests.support.parallel import parallel_map
from tests.support.privacy_helpers import (
    AMOUNT,
    Equation,
    Row,
    VarKey,
    _components,
    knowledge,
    unknown_rows,
)

PROTECTED = ("gender", "age_band", "origin", "category")
PATIENCE = 16  # random objectives in a row that widen nothing before the programs per value


@dataclass
class Interval:
    lo: float
    hi: float
    known_zero: bool  # the key set alone says 0 (a mode with no line present)

    def whole_numbers(self) -> float:
        if self.hi < self.lo:  # nothing seen yet
            return 0
        if self.hi == math.inf:
            return math.inf
        return max(0, math.floor(self.hi + 1e-6) - math.ceil(self.lo - 1e-6) + 1)


def intervals(frames: list[Frame], *, every_group: bool = False) -> dict[tuple[int, int, str, str], Interval]:
    """(window start, res, cell, key) -> interval of every suppressed value, window by window.

    By default a group whose equations hold no released value (every right-hand side 0) is not solved:
    any solution scaled up is one (nothing is bounded above, a value is in 3 whole numbers), and moving
    all of a category's persons of a cell to another category of its breakdown, up every hidden
    ancestor, is one with that category at 0 (nothing is proven present). `every_group` solves them too
    (the test on a small city checks the argument)."""
    windows: dict[int, list[Frame]] = defaultdict(list)
    for f in frames:
        windows[f.window_start_ms].append(f)
    solve = partial(_window, every_group=every_group)
    out: dict[tuple[int, int, str, str], Interval] = {}
    for start, found in zip(windows, parallel_map(solve, list(windows.values())), strict=True):
        for key, interval in found.items():
            out[(start, *key)] = interval
    return out


def _window(frames: list[Frame], every_group: bool) -> dict[VarKey, Interval]:
    return solve_system(knowledge(frames), every_group)


Knowledge = tuple[dict[VarKey, float | None], list[Equation], dict[VarKey, float], set[VarKey]]


def solve_system(system: Knowledge, every_group: bool = False) -> dict[VarKey, Interval]:
    """The interval of every unknown of a system of knowledge (privacy_helpers.knowledge)."""
    known, eqs, floors, zeros = system
    unknown, rows = unknown_rows(known, eqs)
    out: dict[VarKey, Interval] = {}
    grouped = set()
    for cols, group in _components(len(unknown), rows):
        keys = [unknown[c] for c in cols]
        grouped.update(keys)
        if not every_group and all(abs(b) < 1e-9 for _, b in group):
            continue
        lo, hi = _solve(keys, {c: i for i, c in enumerate(cols)}, group, floors)
        for i, k in enumerate(keys):
            out[k] = Interval(float(lo[i]), float(hi[i]), k in zeros)
    for k in unknown:  # in no equation: only its floor bounds it
        if k not in grouped and k not in out:
            out[k] = Interval(floors.get(k, 0.0), math.inf, k in zeros)
    return out


def _solve(
    keys: list[VarKey], local: dict[int, int], group: list[Row], floors: dict[VarKey, float]
) -> tuple[np.ndarray, np.ndarray]:
    n = len(keys)
    h = highspy.Highs()  # type: ignore[no-untyped-call]  # highspy has no annotations
    h.setOptionValue("output_flag", False)
    h.setOptionValue("presolve", "off")  # one objective after another: go on from the last basis
    h.setOptionValue("simplex_strategy", 4)  # primal: the last optimum stays feasible
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = n, len(group)
    lp.col_cost_ = np.zeros(n)
    lp.col_lower_ = np.array([floors.get(k, 0.0) for k in keys])
    lp.col_upper_ = np.full(n, math.inf)
    lp.row_lower_ = lp.row_upper_ = np.array([b for _, b in group])
    entries = sorted((local[c], r, v) for r, (row, _) in enumerate(group) for c, v in row.items() if v)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = np.searchsorted([e[0] for e in entries], np.arange(n + 1)).astype(np.int32)
    lp.a_matrix_.index_ = np.array([e[1] for e in entries], dtype=np.int32)
    lp.a_matrix_.value_ = np.array([e[2] for e in entries], dtype=float)
    h.passModel(lp)
    count = np.array([not k[2].startswith(AMOUNT) for k in keys])
    protected = np.array([parse_stat_key(k[2])[2] in PROTECTED for k in keys])
    return _Bounds(h, count).search(protected, np.asarray(lp.col_lower_))


class _Bounds:
    """Min and max of each unknown, solved only where a finding could hide: every whole-number solution
    met on the way is a feasible point, so a value seen at 0, or seen spanning 3 whole numbers, needs no
    program of its own (the interval is at least that wide). Where a program is solved it is exact."""

    def __init__(self, h: highspy.Highs, count: np.ndarray) -> None:
        self.h, self.count, self.n = h, count, len(count)
        self.lo = np.full(self.n, math.inf)
        self.hi = np.full(self.n, -math.inf)

    def wide(self, j: int) -> bool:
        return Interval(self.lo[j], self.hi[j], False).whole_numbers() >= 3

    def narrow(self) -> np.ndarray:
        """Which values are not yet seen spanning 3 whole numbers (all of `wide`, at once)."""
        with np.errstate(invalid="ignore"):
            span = np.floor(self.hi + 1e-6) - np.ceil(self.lo - 1e-6) + 1
        wide: np.ndarray = (self.hi == math.inf) | (span >= 3)
        return ~wide

    def explore(self) -> None:
        """Random objectives over the values not yet wide, until PATIENCE of them in a row widen none.
        Each optimum is a feasible point. On the fixture's sixth minute this left 724 programs per value
        of 26,779, and the attack took 12 s of CPU instead of 75."""
        rng = np.random.default_rng(0)
        idle, left = 0, self.narrow()
        while idle < PATIENCE and left.any():
            cost = np.where(left, rng.uniform(-1.0, 1.0, self.n), 0.0)
            self.h.changeColsCost(self.n, np.arange(self.n, dtype=np.int32), cost)
            self.h.changeObjectiveSense(highspy.ObjSense.kMaximize)
            self.h.run()
            if self.h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
                return  # unbounded or astray: the programs per value settle it
            self.seen(np.asarray(self.h.getSolution().col_value))
            now = self.narrow()
            idle = 0 if (left & ~now).any() else idle + 1
            left = now

    def search(self, protected: np.ndarray, lower: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.explore()
        for j in range(self.n):
            if not self.wide(j):
                self.hi[j] = max(self.hi[j], _bound(self, j, highspy.ObjSense.kMaximize))
            at_floor = self.lo[j] <= lower[j] + 1e-9  # seen at its least possible value: exact
            if not at_floor and (not self.wide(j) or (protected[j] and self.lo[j] > 1e-6)):
                self.lo[j] = min(self.lo[j], _bound(self, j, highspy.ObjSense.kMinimize))
        return self.lo, self.hi

    def seen(self, x: np.ndarray) -> None:
        if not (self.count & (np.abs(x - np.round(x)) > 1e-6)).any():  # a whole-number solution
            np.minimum(self.lo, x, out=self.lo)
            np.maximum(self.hi, x, out=self.hi)


def _bound(b: _Bounds, j: int, sense: highspy.ObjSense) -> float:
    """min or max of unknown j: linear, then integer where the linear optimum is fractional on a count."""
    h, n, count = b.h, b.n, b.count
    cost = np.zeros(n)
    cost[j] = 1.0
    h.changeColsCost(n, np.arange(n, dtype=np.int32), cost)
    h.changeObjectiveSense(sense)
    h.run()
    status = h.getModelStatus()
    if status not in (highspy.HighsModelStatus.kOptimal, highspy.HighsModelStatus.kUnbounded):
        h.clearSolver()  # a warm start that went astray: solve this one from scratch
        h.run()
        status = h.getModelStatus()
    if status == highspy.HighsModelStatus.kUnbounded:
        return math.inf
    assert status == highspy.HighsModelStatus.kOptimal, f"the released frames are inconsistent: {status}"
    x = np.asarray(h.getSolution().col_value)
    b.seen(x)
    if not (count & (np.abs(x - np.round(x)) > 1e-6)).any():
        return float(np.round(x[j]) if count[j] else x[j])
    h.changeColsIntegrality(n, np.arange(n, dtype=np.int32), np.where(count, 1, 0).astype(np.uint8))
    h.run()
    x = np.asarray(h.getSolution().col_value)
    b.seen(x)
    h.changeColsIntegrality(n, np.arange(n, dtype=np.int32), np.zeros(n, dtype=np.uint8))
    return float(round(x[j]) if count[j] else x[j])


def measures(aggregate: WindowAggregate) -> Iterator[tuple[VarKey, Measure]]:
    """Every exact statistic of a window, as (res, cell, key) and its measure."""
    for res, cells in aggregate.cells.items():
        for cell, stats in cells.items():
            for key, m in stats.items():
                yield (res, cell, key), m


def persons_of(aggregates: Iterable[WindowAggregate]) -> dict[tuple[int, int, str, str], int]:
    """(window start, res, cell, key) -> persons behind the exact value: what findings() checks k on."""
    return {(a.window_start_ms, *key): m.persons for a in aggregates for key, m in measures(a)}


def findings(
    found: dict[tuple[int, int, str, str], Interval], persons: dict[tuple[int, int, str, str], int], k: int
) -> tuple[list[tuple[int, int, str, str]], list[tuple[int, int, str, str]]]:
    """(pinned: fewer than 3 whole numbers, proven present: a protected category under k persons with a
    lower bound of 1 or more); values the key set alone fixes at 0 are public, as absent keys are."""
    pinned = [key for key, iv in found.items() if not iv.known_zero and iv.whole_numbers() < 3]
    present = [
        key
        for key, iv in found.items()
        if iv.lo >= 1 - 1e-6 and parse_stat_key(key[3])[2] in PROTECTED and persons.get(key, 0) < k
    ]
    return sorted(pinned), sorted(present)
