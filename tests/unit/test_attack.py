"""Attack tests: an automated differencing attacker against everything the gate releases.

The attacker sees only frames (all resolutions, breakdowns, windows and flows). It must recover no
suppressed value exactly from the gate's output, and it must succeed against a naive threshold-only
gate (so it is able to fail). One synthetic person followed through the release is never in a released
value with fewer than k persons.
"""

from __future__ import annotations

import os
import random

import pytest

from cityscreen.aggregates import WindowAggregate
from cityscreen.frames import Frame, ReleasedFlow
from cityscreen.privacy import release
from cityscreen.privacy.structure import build_structure
from cityscreen.privacy.synthetic import SyntheticWindow, synthetic_windows
from cityscreen.settings import PrivacySettings
from tests.support.factories import SIBLINGS, crowd, make_aggregate
from tests.support.gate_modes import THRESHOLD, threshold
from tests.support.privacy_helpers import recovered, small_released

PERSONS = 1_000


def naive_release(aggregate: WindowAggregate, k: int) -> list[Frame]:
    """Threshold only, no complementary suppression: what the attacker should break."""
    structure = build_structure(aggregate)
    cells: dict[int, dict[str, dict[str, float | None]]] = {}
    for i, (res, cell, key) in enumerate(structure.keys):
        value = float(structure.value[i]) if structure.persons[i] >= k else None
        cells.setdefault(res, {}).setdefault(cell, {})[key] = value
    privacy = release(aggregate, THRESHOLD, published_ms=0)[0].privacy
    flows = [
        ReleasedFlow(f.origin, f.dest, f.kind, f.persons if f.persons >= k else None) for f in aggregate.flows
    ]
    return [
        Frame(1, aggregate.window_start_ms, aggregate.window_s, res, 0, privacy, cells[res], flows)
        for res in sorted(cells, reverse=True)
    ]


def truth(aggregate: WindowAggregate) -> dict[tuple[int, str, str], float]:
    s = build_structure(aggregate)
    return {key: float(s.value[i]) for i, key in enumerate(s.keys)}


@pytest.fixture(scope="module")
def city() -> list[SyntheticWindow]:
    return synthetic_windows(persons=PERSONS, windows=2, seed=7)


def test_attacker_breaks_a_naive_threshold_gate_by_subtraction() -> None:
    agg = make_aggregate({SIBLINGS[0]: crowd(11, "F") + crowd(4, "M")})
    found = recovered(naive_release(agg, 10))
    assert found[(agg.window_start_ms, 8, SIBLINGS[0], "population.persons|gender=M")] == 4.0


def test_attacker_breaks_the_naive_gate_on_the_synthetic_city(city: list[SyntheticWindow]) -> None:
    frames = [f for w in city for f in naive_release(w.aggregate, 10)]
    found = recovered(frames)
    exact = {(w.aggregate.window_start_ms, *key): v for w in city for key, v in truth(w.aggregate).items()}
    assert len(found) > 10, "the attacker should recover many values a naive gate hides"
    assert all(abs(exact[key] - value) < 1e-6 for key, value in found.items())


@pytest.mark.parametrize("k", [10, 20])
def test_gate_output_resists_the_attacker(city: list[SyntheticWindow], k: int) -> None:
    frames = [f for w in city for f in release(w.aggregate, threshold(min_persons=k), published_ms=0)]
    assert any(v is None for f in frames for c in f.cells.values() for v in c.values())
    assert recovered(frames) == {}


def test_gate_resists_the_attacker_on_a_randomised_city() -> None:
    seed = int(os.environ.get("CITY_TEST_SEED", random.SystemRandom().randrange(1 << 30)))
    windows = synthetic_windows(persons=PERSONS, windows=1, seed=seed)
    frames = release(windows[0].aggregate, THRESHOLD, published_ms=0)
    assert recovered(frames) == {}, f"recovered values with CITY_TEST_SEED={seed}"


@pytest.mark.parametrize(
    "mode", [{"stock_noise": False}, {}, {"dp_enabled": True}], ids=["threshold", "stock-noise", "dp"]
)
def test_a_followed_person_is_never_in_a_released_value_under_k(
    city: list[SyntheticWindow], mode: dict[str, object]
) -> None:
    k = 10
    privacy = PrivacySettings.model_validate({"min_persons": k, **mode})
    for window in city:
        agg = window.aggregate
        frames = {f.res: f for f in release(agg, privacy, published_ms=0)}
        for person in sorted(window.touched)[:200]:
            for res, cell, key in window.touched[person]:
                value = frames[res].cells[cell][key]
                if value is not None:
                    assert agg.cells[res][cell][key].persons >= k, (person, res, cell, key)
        assert small_released(list(frames.values()), agg, k) == []
        flows = {(f.origin, f.dest, f.kind): f.persons for f in frames[8].flows}
        assert all(flows[(f.origin, f.dest, f.kind)] is None for f in agg.flows if f.persons < k)
