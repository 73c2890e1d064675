"""The gate's shortcuts against the plain computations they stand for: the exact proof that a group has
nothing determined, the folded interval pass, the pick order of the repair loop, per-cell layouts and
per-cell frames. Same answers, never a less careful one; nothing here is timed."""

from __future__ import annotations

import numpy as np
import pytest

from cityscreen.privacy import audit, release
from cityscreen.privacy.audit import _bounds_from_rest, rank_determined
from cityscreen.privacy.auditor import equation_table
from cityscreen.privacy.exact_rank import proven_free
from cityscreen.privacy.gate import _cells, shown_numbers
from cityscreen.privacy.interval import _pass
from cityscreen.privacy.structure import Structure, build_structure
from cityscreen.privacy.suppression import _pick_order, primary, suppress
from cityscreen.privacy.synthetic import synthetic_windows
from cityscreen.settings import PrivacySettings


@pytest.fixture(scope="module")
def structure() -> Structure:
    return build_structure(synthetic_windows(persons=1_500, windows=1, seed=4)[0].aggregate)


def _proof(a: np.ndarray) -> bool:
    rows, cols = np.nonzero(a)
    one = np.array([0])
    return proven_free(
        one + a.shape[0], one + a.shape[1], np.zeros(len(rows), dtype=np.int64), rows, cols, a[rows, cols] > 0
    )[0]


def _signed_rows(rng: np.random.Generator, m: int, n: int) -> np.ndarray:
    """Rows `head - members` on random columns, like the equations restricted to their unknowns."""
    a = np.zeros((m, n))
    for row in a:
        cols = rng.choice(n, size=int(rng.integers(1, min(n, 6) + 1)), replace=False)
        row[cols[0]] = 1.0
        row[cols[1:]] = -1.0
    return a


def test_a_proof_means_rank_determined_pins_nothing() -> None:
    rng = np.random.default_rng(0)
    proven = 0
    for _ in range(1_500):
        a = _signed_rows(rng, int(rng.integers(1, 25)), int(rng.integers(1, 35)))
        if _proof(a):
            proven += 1
            assert not rank_determined(a).any()
    assert proven > 50, "the random matrices should hold some provable ones"


def test_no_proof_when_something_is_determined_or_an_entry_repeats() -> None:
    assert not _proof(np.array([[1.0, -1.0, -1.0], [0.0, 1.0, 0.0]]))  # the second row pins x1
    assert _proof(np.array([[1.0, -1.0, -1.0], [1.0, -1.0, -1.0]]))  # two free directions, no pin
    # the same place twice: its sum (here 0) is no sign, so no proof is attempted
    rows, cols, plus = np.array([0, 0, 0]), np.array([0, 1, 1]), np.array([True, False, True])
    one = np.array([1])
    assert proven_free(one, one + 1, np.zeros(3, dtype=np.int64), rows, cols, plus) == [False]


def test_proofs_on_the_groups_of_suppression_rounds(structure: Structure) -> None:
    """Every group the audit sees, under the primary mask and the final one: a proof pins nothing, and
    groups with nothing determined are (nearly all) proven."""
    unproven_free = proven = 0
    for mask in (primary(structure, 10, 0.8), suppress(structure, 10, 0.8)):
        for vars_, eqs in audit.components(structure, mask):
            if not eqs:
                continue
            a, _ = audit._system(structure, mask, vars_, eqs)
            pinned = rank_determined(a).any()
            if _proof(a):
                proven += 1
                assert not pinned
            elif not pinned:
                unproven_free += 1
    assert proven > 0 and unproven_free <= proven // 10


def test_folded_pass_gives_audits_bounds() -> None:
    rng = np.random.default_rng(3)
    n_rows, width = 400, 6
    lo = rng.integers(0, 5, (n_rows, width)).astype(float)
    hi = lo + rng.integers(0, 5, (n_rows, width))
    hi[rng.random((n_rows, width)) < 0.3] = np.inf
    lo[:, 4:][rng.random((n_rows, 2)) < 0.5] = 0.0  # padding-like columns
    hi[:, 4:][lo[:, 4:] == 0.0] = 0.0
    pos = np.zeros((n_rows, width), dtype=bool)
    pos[:, 0] = True
    t_lo, t_hi = np.where(pos, lo, -hi), np.where(pos, hi, -lo)
    new_lo, new_hi = _bounds_from_rest(t_lo, t_hi)
    want_lo, want_hi = np.where(pos, new_lo, -new_hi), np.where(pos, new_hi, -new_lo)
    got_lo, got_hi = _pass(lo, hi)
    assert np.array_equal(got_lo, want_lo) and np.array_equal(got_hi, want_hi)


def test_pick_order_picks_what_the_key_tuple_picks() -> None:
    rng = np.random.default_rng(8)
    n = 300
    value = rng.choice([0.0, -0.0, 1.5, 2.0, 7.25, 1e9], n)
    persons = rng.integers(0, 4, n)
    order = _pick_order(value, persons)
    assert order is not None
    vals, pers = value.tolist(), persons.tolist()
    for _ in range(2_000):
        cand = [int(v) for v in rng.choice(n, size=int(rng.integers(1, 9)), replace=False)]
        want = min(cand, key=lambda v: (vals[v], pers[v], v))
        assert min(cand, key=order.__getitem__) == want
    assert _pick_order(np.array([1.0, np.nan]), np.array([1, 1])) is None


def test_cells_lay_out_every_variable_once_in_order(structure: Structure) -> None:
    laid = [(res, cell, key) for res, cell, keys in structure.cells for key in keys]
    assert laid == list(structure.keys)
    idx, _ = equation_table(structure)
    assert (idx[:, 0] < len(structure.keys)).all()


def test_per_cell_frames_match_the_per_value_loop(structure: Structure) -> None:
    hidden = suppress(structure, 10, 0.8)
    shown = shown_numbers(structure.value)
    plain = Structure(**{**structure.__dict__, "cells": []})
    assert _cells(structure, hidden, shown) == _cells(plain, hidden, shown)


@pytest.mark.parametrize("dp", [False, True])
def test_release_replays_identically(dp: bool) -> None:
    aggregate = synthetic_windows(persons=900, windows=1, seed=12)[0].aggregate
    privacy = PrivacySettings.model_validate({"dp_enabled": dp})
    assert release(aggregate, privacy, published_ms=1) == release(aggregate, privacy, published_ms=1)
