"""The gate's own differencing auditor: which suppressed values the released ones pin down exactly.

Two tests per block of linked values: linear algebra (an unknown is determined when its unit vector
lies in the row space of the equations restricted to the unknowns) and interval bounds (nonnegativity
propagated through every equation until a fixpoint). The attack tests run an independent attacker.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from cityscreen.privacy.structure import Structure

_RANK_TOL = 1e-9
_MAX_PASSES = 60


def components(structure: Structure, suppressed: np.ndarray) -> list[tuple[list[int], list[int]]]:
    """Groups of suppressed variables linked by equations: (variable ids, equation ids)."""
    parent = list(range(len(structure.keys)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    touched: list[int] = []
    for e, (head, members) in enumerate(structure.equations):
        unknown = [v for v in (head, *members) if suppressed[v]]
        if not unknown:
            continue
        touched.append(e)
        root = find(unknown[0])
        for v in unknown[1:]:
            other = find(v)
            if other != root:
                parent[other] = root
    groups: dict[int, list[int]] = defaultdict(list)
    for v in (int(i) for i in np.flatnonzero(suppressed)):
        groups[find(v)].append(v)
    eqs: dict[int, list[int]] = defaultdict(list)
    for e in touched:
        head, members = structure.equations[e]
        first = next(v for v in (head, *members) if suppressed[v])
        eqs[find(first)].append(e)
    return [(vars_, eqs.get(root, [])) for root, vars_ in groups.items()]


def _system(
    structure: Structure, suppressed: np.ndarray, vars_: list[int], eqs: list[int]
) -> tuple[np.ndarray, np.ndarray]:
    col = {v: j for j, v in enumerate(vars_)}
    a = np.zeros((len(eqs), len(vars_)))
    b = np.zeros(len(eqs))
    for r, e in enumerate(eqs):
        head, members = structure.equations[e]
        for v, sign in ((head, 1.0), *((m, -1.0) for m in members)):
            if suppressed[v]:
                a[r, col[v]] += sign
            else:
                b[r] -= sign * structure.value[v]
    return a, b


def rank_determined(a: np.ndarray) -> np.ndarray:
    """Columns whose unknown is fixed by `a @ x = b` whatever b is (unit vector in the row space).

    The row-space projector's diagonal, from the eigenvectors of the small Gram matrix a @ a.T: the
    equations are far fewer than the unknowns, so this is much cheaper than an SVD of `a`.
    """
    if a.size == 0:
        return np.zeros(a.shape[1], dtype=bool)
    eigval, eigvec = np.linalg.eigh(a @ a.T)
    keep = eigval > _RANK_TOL * max(1.0, float(eigval[-1]))
    basis = (eigvec[:, keep].T @ a) / np.sqrt(eigval[keep])[:, None]
    weight = (basis**2).sum(axis=0)
    return np.asarray(weight > 1 - 1e-6)


def interval_bounds(structure: Structure, suppressed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bounds of every value: released ones exact, suppressed ones from nonnegativity propagated
    through every equation (vectorised over all equations) to a fixpoint."""
    n = len(structure.keys)
    lo = np.where(suppressed, 0.0, structure.value)
    hi = np.where(suppressed, np.inf, structure.value)
    if not structure.equations:
        return lo, hi
    width = 1 + max(len(ms) for _, ms in structure.equations)
    idx = np.full((len(structure.equations), width), n, dtype=np.int64)  # n = padding slot
    coef = np.zeros(idx.shape)
    for r, (head, members) in enumerate(structure.equations):
        idx[r, 0], coef[r, 0] = head, 1.0
        idx[r, 1 : 1 + len(members)] = members
        coef[r, 1 : 1 + len(members)] = -1.0
    # keep only equations with an unknown
    live = suppressed[np.minimum(idx, n - 1)] & (idx < n)
    rows = live.any(axis=1)
    idx, coef = idx[rows], coef[rows]
    pos = coef > 0
    for _ in range(_MAX_PASSES):
        lo_e, hi_e = np.append(lo, 0.0)[idx], np.append(hi, 0.0)[idx]
        # each term coef * x lies in [t_lo, t_hi]; the equation says the terms sum to 0
        t_lo = np.where(pos, lo_e, -hi_e)
        t_hi = np.where(pos, hi_e, -lo_e)
        new_lo, new_hi = _bounds_from_rest(t_lo, t_hi)
        # term bounds back to variable bounds
        v_lo = np.where(pos, new_lo, -new_hi)
        v_hi = np.where(pos, new_hi, -new_lo)
        nlo, nhi = np.append(lo.copy(), 0.0), np.append(hi.copy(), 0.0)
        np.maximum.at(nlo, idx, v_lo)
        np.minimum.at(nhi, idx, v_hi)
        nlo, nhi = nlo[:n], nhi[:n]
        changed = bool(((nlo > lo + 1e-9) | (nhi < hi - 1e-9)).any())
        lo, hi = np.where(suppressed, nlo, lo), np.where(suppressed, nhi, hi)
        if not changed:
            break
    return lo, hi


def _bounds_from_rest(t_lo: np.ndarray, t_hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For terms summing to zero: term_j in [-(sum of others' highs), -(sum of others' lows)]."""
    lo_inf = np.isinf(t_lo)
    hi_inf = np.isinf(t_hi)
    lo_fin = np.where(lo_inf, 0.0, t_lo)
    hi_fin = np.where(hi_inf, 0.0, t_hi)
    rest_lo = lo_fin.sum(axis=1, keepdims=True) - lo_fin
    rest_hi = hi_fin.sum(axis=1, keepdims=True) - hi_fin
    others_lo_inf = lo_inf.sum(axis=1, keepdims=True) - lo_inf > 0
    others_hi_inf = hi_inf.sum(axis=1, keepdims=True) - hi_inf > 0
    new_lo = np.where(others_hi_inf, -np.inf, -rest_hi)
    new_hi = np.where(others_lo_inf, np.inf, -rest_lo)
    return new_lo, new_hi


def _homogeneous(structure: Structure, suppressed: np.ndarray, e: int) -> bool:
    head, members = structure.equations[e]
    return bool(suppressed[head]) and all(suppressed[m] for m in members)


def determined(structure: Structure, suppressed: np.ndarray) -> list[int]:
    """Suppressed variables an observer of the released values can recover exactly.

    A group whose equations hold no released value at all is skipped: adding one more person (or
    payment, or tap) to any of its cells changes only values of the group, so every one of them has
    another solution and none is determined.
    """
    lo, hi = interval_bounds(structure, suppressed)
    pinned = suppressed & ((hi - lo) <= 1e-6 * np.maximum(1.0, np.abs(structure.value)))
    seen: dict[bytes, np.ndarray] = {}  # count and amount (tap in and out) often share one pattern
    for vars_, eqs in components(structure, suppressed):
        if not eqs or all(_homogeneous(structure, suppressed, e) for e in eqs):
            continue
        a, _ = _system(structure, suppressed, vars_, eqs)
        key = repr(a.shape).encode() + a.astype(np.int8).tobytes()
        if key not in seen:
            seen[key] = rank_determined(a)
        pinned[vars_] |= seen[key]
    return [int(v) for v in np.flatnonzero(pinned)]
