"""The gate remembers what its protection programs decided, by the programs' content
(cityscreen/privacy/decided.py): a group met again, in a later window or a later gating, takes that
answer. The frames must be byte for byte those of a gate that solves every group's programs."""

from __future__ import annotations

import numpy as np
import pytest

from cityscreen.aggregates import WindowAggregate
from cityscreen.frames import encode_frame
from cityscreen.privacy import release
from cityscreen.privacy.auditor import equation_table
from cityscreen.privacy.decided import DECIDED, Decided, digest
from cityscreen.privacy.protection import Protection
from cityscreen.privacy.structure import build_structure
from cityscreen.privacy.suppression import primary
from cityscreen.settings import Settings
from tests.support.gate_modes import THRESHOLD
from tests.support.streams_support import make_raw_events, run_engine, split_records, to_clean
from tests.unit.test_protection_search import small_city

SETTINGS = Settings(kafka={"partitions": 2}, privacy=THRESHOLD)  # protection programs on every layer


def _minutes(persons: int, seed: int) -> list[WindowAggregate]:
    raw = make_raw_events(persons=persons, minutes=4, seed=seed, late=0)
    records = split_records([to_clean(r, SETTINGS) for r in raw], 2, 7)
    return [a for a in run_engine(records, SETTINGS) if a.window_s == 60]


def _solving_every_group(
    self: Protection, suppressed: np.ndarray, vars_: np.ndarray, eqs: np.ndarray
) -> np.ndarray:
    lo, hi = self.intervals(suppressed, vars_, eqs)  # the programs, nothing remembered
    return np.asarray(vars_[self._failing(vars_, lo, hi)])


def test_windows_gated_with_what_other_windows_decided_release_what_solving_releases(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    windows = [a for persons, seed in ((1000, 7), (300, 8), (600, 9)) for a in _minutes(persons, seed)]
    with monkeypatch.context() as m:
        m.setattr(Protection, "_decided", _solving_every_group)
        solved = [[encode_frame(f) for f in release(a, SETTINGS.privacy, published_ms=7)] for a in windows]
    DECIDED.clear()
    remembered, hits = [], []
    for a in windows:
        before = DECIDED.hits
        remembered.append([encode_frame(f) for f in release(a, SETTINGS.privacy, published_ms=7)])
        hits.append(DECIDED.hits - before)
    assert remembered == solved
    # not vacuous: windows that differ from the one before took answers decided for another window
    assert sum(n for n, a, b in zip(hits[1:], windows[1:], windows, strict=False) if a.cells != b.cells) >= 3
    gated = [f for a in windows for f in release(a, SETTINGS.privacy, published_ms=7)]
    assert any(v is None for f in gated for c in f.cells.values() for v in c.values())  # suppressed some


def test_groups_met_under_other_masks_are_decided_as_their_own_programs_decide() -> None:
    # random masks over one small city: the same values meet other released neighbours, so only
    # a memory keyed by the whole program gives every group the answer of its own programs
    DECIDED.clear()
    hits, flagged = 0, 0
    for seed in range(6):
        structure = build_structure(small_city(seed, 200))
        idx, coef = equation_table(structure)
        rng = np.random.default_rng(seed)
        for _ in range(6):
            sup = primary(structure, 10, 0.5) | (rng.random(len(structure.keys)) < 0.2)
            remembering = Protection(structure, idx, coef, min_persons=10)
            solving = Protection(structure, idx, coef, min_persons=10)
            for vars_, eqs in remembering.groups(sup):
                before = DECIDED.hits
                got = remembering._decided(sup, vars_, eqs)
                hits += DECIDED.hits - before
                assert got.tolist() == _solving_every_group(solving, sup, vars_, eqs).tolist()
                flagged += len(got)
    assert hits and flagged  # not vacuous: answers from memory, and values the programs pin


def test_a_group_whose_released_neighbours_differ_is_not_taken_from_memory() -> None:
    structure = build_structure(small_city(3, 200))
    idx, coef = equation_table(structure)
    sup = primary(structure, 10, 0.5)
    vars_, eqs = Protection(structure, idx, coef, min_persons=10).groups(sup)[0]
    DECIDED.clear()
    Protection(structure, idx, coef, min_persons=10)._decided(sup, vars_, eqs)
    shown = [int(v) for v in idx[eqs].ravel() if v < len(sup) and not sup[v]]
    structure.value[shown[0]] += 7  # the same suppressed values, another right-hand side
    before = DECIDED.hits
    Protection(structure, idx, coef, min_persons=10)._decided(sup, vars_, eqs)
    assert DECIDED.hits == before
    structure.value[shown[0]] -= 7
    Protection(structure, idx, coef, min_persons=10)._decided(sup, vars_, eqs)
    assert DECIDED.hits == before + 1  # and the same program again is


def test_the_digest_tells_apart_what_a_decision_depends_on() -> None:
    a, b = np.array([1.0, 2.0]), np.array([0, 1])
    base = digest(a, b)
    assert digest(a, b) == base
    assert digest(np.array([1.0, 3.0]), b) != base  # a value
    assert digest(a, b.astype(np.int32)) != base  # a type
    assert digest(a.reshape(2, 1), b) != base  # a shape
    assert digest(b, a) != base  # the order


def test_the_oldest_decisions_are_forgotten_past_the_size() -> None:
    memory = Decided(2)
    for i in range(3):
        memory.put(bytes([i]), np.array([i]))
    assert memory.get(bytes([0])) is None and memory.get(bytes([2])) is not None
    assert memory.hits == 1
