"""Test helpers for the release gate: an independent differencing attacker (the aggregates it attacks come
from tests.support.factories).

The attacker sees only frames and the public city file. It rebuilds every equation the release layout
implies (parent = sum of children one resolution finer; total = sum of each breakdown's categories;
transit mode = sum of its lines; an absent key is 0; a present count total or line is at least 1),
then (1) finds unknowns fixed by the linear system (SVD null space), (2) reduces the system to row
echelon form and propagates nonnegative interval bounds through the original and the reduced rows.
"""

from __future__ import annotations

from collections import defaultdict
from itertools import pairwise

import h3
import numpy as np

from cityscreen.aggregates import STATISTICS, WindowAggregate, parse_stat_key
from cityscreen.city import load_city
from cityscreen.demography import BREAKDOWN_CATEGORIES
from cityscreen.frames import Frame
from cityscreen.privacy.structure import build_structure

# ------------------------------------------------------------------------------------ the attacker
VarKey = tuple[int, str, str]
AMOUNT = "payments.amount_cny"
Equation = list[tuple[VarKey, float]]  # one linear equation of the layout: (unknown, coefficient) terms


def keys_by_cell(known: dict[VarKey, float | None]) -> dict[tuple[int, str], list[str]]:
    """(res, cell) -> the keys its frame lists, null or not."""
    by_cell: dict[tuple[int, str], list[str]] = defaultdict(list)
    for res, cell, key in known:
        by_cell[(res, cell)].append(key)
    return by_cell


def _equations(frames: list[Frame]) -> tuple[dict[VarKey, float | None], list[Equation]]:
    known: dict[VarKey, float | None] = {}
    for f in frames:
        for cell, stats in f.cells.items():
            for key, value in stats.items():
                known[(f.res, cell, key)] = value
    eqs: list[Equation] = []
    by_cell = keys_by_cell(known)
    for (res, cell), keys in by_cell.items():
        for key in keys:
            layer, metric, dim, _ = parse_stat_key(key)
            if dim is not None:
                continue
            for d in STATISTICS.get(layer, {}).get(metric, ()):
                parts = [k for k in keys if k.startswith(key + "|") and parse_stat_key(k)[2] == d]
                if d in BREAKDOWN_CATEGORIES or parts:
                    eqs.append([((res, cell, key), 1.0)] + [((res, cell, p), -1.0) for p in parts])
    resolutions = sorted({f.res for f in frames}, reverse=True)
    for finer, coarser in pairwise(resolutions):
        children: dict[tuple[str, str], list[VarKey]] = defaultdict(list)
        for (res, cell), keys in by_cell.items():
            if res == finer:
                for key in keys:
                    children[(h3.cell_to_parent(cell, coarser), key)].append((res, cell, key))
        for (res, cell), keys in by_cell.items():
            if res == coarser:
                for key in keys:
                    members = children.get((cell, key), [])
                    eqs.append([((res, cell, key), 1.0)] + [(m, -1.0) for m in members])
    return known, eqs


def truth_of(aggregate: WindowAggregate) -> dict[VarKey, float]:
    """Every key the frames list with its true value, as the gate sees it (empty categories as 0)."""
    structure = build_structure(aggregate)
    return dict(zip(structure.keys, structure.value.tolist(), strict=True))


def metro_lines() -> frozenset[str]:
    return frozenset(line.id for line in load_city(None).metro_lines)


def knowledge(
    frames: list[Frame],
) -> tuple[dict[VarKey, float | None], list[Equation], dict[VarKey, float], set[VarKey]]:
    """What a reader of the frames and the public city file knows: released values, equations (with
    transit mode = its lines present: the city file lists the metro lines, every other line is a bus
    line), floors (a present count total or line had data: >= 1) and the modes the key set says are 0."""
    known, eqs = _equations(frames)
    metro = metro_lines()
    floors: dict[VarKey, float] = {}
    zeros: set[VarKey] = set()
    for (res, cell), keys in keys_by_cell(known).items():
        for key in keys:
            layer, metric, dim, cat = parse_stat_key(key)
            head = f"{layer}.{metric}"
            if (dim is None and head != AMOUNT) or dim == "line":
                floors[(res, cell, key)] = 1.0
            if dim == "mode":
                lines = [
                    k
                    for k in keys
                    if k.startswith(head + "|line=")
                    and ("metro" if k.partition("=")[2] in metro else "bus") == cat
                ]
                eqs.append([((res, cell, key), 1.0)] + [((res, cell, k), -1.0) for k in lines])
                if not lines:
                    zeros.add((res, cell, key))
    return known, eqs, floors, zeros


def recovered(frames: list[Frame]) -> dict[tuple[int, int, str, str], float]:
    """Every suppressed value the attacker determines exactly: (window start, res, cell, key) -> value.

    Windows are tumbling and no longer span is released, so no equation links two windows; each
    window's frames form one system."""
    windows: dict[int, list[Frame]] = defaultdict(list)
    for f in frames:
        windows[f.window_start_ms].append(f)
    return {
        (start, *key): value for start, group in windows.items() for key, value in _recovered(group).items()
    }


Row = tuple[dict[int, float], float]  # coefficient of each unknown's column, right-hand side


def unknown_rows(known: dict[VarKey, float | None], eqs: list[Equation]) -> tuple[list[VarKey], list[Row]]:
    """The suppressed values (columns, sorted) and each equation restricted to them (released values
    moved to the right-hand side); an equation with no unknown must hold exactly."""
    unknown = sorted(k for k, v in known.items() if v is None)
    col = {k: j for j, k in enumerate(unknown)}
    rows: list[tuple[dict[int, float], float]] = []
    for eq in eqs:
        row: dict[int, float] = defaultdict(float)
        b = 0.0
        for var, c in eq:
            if var in col:
                row[col[var]] += c
            else:
                b -= c * (known.get(var) or 0.0)  # an absent key is a known 0
        if any(row.values()):
            rows.append((row, b))
        elif abs(b) > 1e-6:
            raise AssertionError(f"released frames are inconsistent: {eq}")
    return unknown, rows


def _recovered(frames: list[Frame]) -> dict[VarKey, float]:
    known, eqs, floors, zeros = knowledge(frames)
    unknown, rows = unknown_rows(known, eqs)
    found: dict[VarKey, float] = {}
    for cols, group in _components(len(unknown), rows):
        local = {c: i for i, c in enumerate(cols)}
        a = np.zeros((len(group), len(cols)))
        b = np.zeros(len(group))
        for r, (row, rhs) in enumerate(group):
            for c, v in row.items():
                a[r, local[c]] = v
            b[r] = rhs
        floor = np.array([floors.get(unknown[c], 0.0) for c in cols])
        for i, value in _solve(a, b, floor).items():
            if unknown[cols[i]] not in zeros:  # 0 by the key set alone: public, as an absent key
                found[unknown[cols[i]]] = value
    return found


def _components(n: int, rows: list[Row]) -> list[tuple[list[int], list[Row]]]:
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for row, _ in rows:
        cs = list(row)
        for c in cs[1:]:
            parent[find(c)] = find(cs[0])
    cols: dict[int, list[int]] = defaultdict(list)
    for c in range(n):
        cols[find(c)].append(c)
    groups: dict[int, list[Row]] = defaultdict(list)
    for row, rhs in rows:
        groups[find(next(iter(row)))].append((row, rhs))
    return [(cols[root], groups[root]) for root in groups]


def _solve(a: np.ndarray, b: np.ndarray, floor: np.ndarray) -> dict[int, float]:
    found: dict[int, float] = {}
    # (1) linear algebra: an unknown is determined when its unit vector lies in the row space of a
    # (the row-space projector's diagonal is 1 exactly for those)
    u, s, vt = np.linalg.svd(a, full_matrices=False)
    rank = int((s > 1e-9 * s[0]).sum())
    in_row_space = (vt[:rank] ** 2).sum(axis=0)
    x = vt[:rank].T @ ((u[:, :rank].T @ b) / s[:rank])  # the least-norm solution
    for j in range(a.shape[1]):
        if in_row_space[j] > 1 - 1e-7:
            found[j] = float(x[j])
    # (2) bounds: nonnegativity through the equations and their reduced row echelon form
    reduced = _rref(np.column_stack([a, b]))
    lo, hi = _bounds(np.vstack([a, reduced[:, :-1]]), np.concatenate([b, reduced[:, -1]]), floor)
    for j in range(a.shape[1]):
        if hi[j] - lo[j] < 1e-6:
            found[j] = float(lo[j])
    return found


def _rref(m: np.ndarray) -> np.ndarray:
    m = m.astype(float).copy()
    r = 0
    for c in range(m.shape[1] - 1):
        if r == m.shape[0]:
            break
        p = r + int(np.argmax(np.abs(m[r:, c])))
        if abs(m[p, c]) < 1e-9:
            continue
        m[[r, p]] = m[[p, r]]
        m[r] /= m[r, c]
        others = np.arange(m.shape[0]) != r
        m[others] -= np.outer(m[others, c], m[r])
        r += 1
    m[np.abs(m) < 1e-9] = 0.0
    return m[:r]


def _bounds(
    a: np.ndarray, b: np.ndarray, floor: np.ndarray, passes: int = 300
) -> tuple[np.ndarray, np.ndarray]:
    """x >= floor >= 0 and a @ x = b: bounds of each unknown, propagated through all rows at once to a
    fixpoint."""
    n = a.shape[1]
    lo, hi = floor.astype(float), np.full(n, np.inf)
    nz, pos = a != 0, a > 0
    safe = np.where(nz, a, 1.0)
    for _ in range(passes):
        with np.errstate(invalid="ignore"):
            t_lo = np.where(nz, np.where(pos, a * lo, a * hi), 0.0)  # each term's least value
            t_hi = np.where(nz, np.where(pos, a * hi, a * lo), 0.0)
        lo_inf, hi_inf = np.isinf(t_lo), np.isinf(t_hi)
        f_lo, f_hi = np.where(lo_inf, 0.0, t_lo), np.where(hi_inf, 0.0, t_hi)
        rest_lo = f_lo.sum(axis=1, keepdims=True) - f_lo
        rest_hi = f_hi.sum(axis=1, keepdims=True) - f_hi
        rest_lo = np.where(lo_inf.sum(axis=1, keepdims=True) - lo_inf > 0, -np.inf, rest_lo)
        rest_hi = np.where(hi_inf.sum(axis=1, keepdims=True) - hi_inf > 0, np.inf, rest_hi)
        rhs = b[:, None]
        low = np.where(pos, (rhs - rest_hi) / safe, (rhs - rest_lo) / safe)
        high = np.where(pos, (rhs - rest_lo) / safe, (rhs - rest_hi) / safe)
        low = np.where(nz & np.isfinite(low), low, -np.inf).max(axis=0)
        high = np.where(nz & np.isfinite(high), high, np.inf).min(axis=0)
        new_lo, new_hi = np.maximum(lo, low), np.minimum(hi, high)
        if not ((new_lo > lo + 1e-7).any() or (new_hi < hi - 1e-7).any()):
            break
        lo, hi = new_lo, new_hi
    return lo, hi


def small_released(frames: list[Frame], aggregate: WindowAggregate, k: int) -> list[VarKey]:
    """Released values with fewer than k distinct persons behind them."""
    bad = []
    for f in frames:
        for cell, stats in f.cells.items():
            for key, value in stats.items():
                m = aggregate.cells.get(f.res, {}).get(cell, {}).get(key)
                if value is not None and (m is None or m.persons < k):
                    bad.append((f.res, cell, key))
    return bad
