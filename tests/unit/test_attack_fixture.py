"""Attack tests on the recorded fixture (fixtures/shenzhen-10min.jsonl.gz), aggregated by the reference
implementation: the differencing attacker recovers nothing, and persons followed through the release
are never in a released value with fewer than k persons.

The attacker is slow (dense linear algebra over thousands of unknowns), so by default it attacks the
first windows; CITY_ATTACK_ALL_WINDOWS=1 attacks every window of the fixture.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from cityscreen.aggregates import WindowAggregate
from cityscreen.events import RawEvent, RawPayment, RawSim, RawTransit
from cityscreen.frames import Frame
from cityscreen.settings import Settings
from services.generator.fixtures import read_events
from tests.support.gate_modes import threshold
from tests.support.parallel import release_all
from tests.support.privacy_helpers import recovered, small_released
from tests.support.reference_aggregates import reference_window_aggregates

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "shenzhen-10min.jsonl.gz"
WINDOWS = None if os.environ.get("CITY_ATTACK_ALL_WINDOWS") == "1" else 2

pytestmark = pytest.mark.skipif(not FIXTURE.exists(), reason="fixture not recorded")


@pytest.fixture(scope="module")
def events() -> list[RawEvent]:
    return list(read_events(FIXTURE))


@pytest.fixture(scope="module")
def aggregates(events: list[RawEvent]) -> list[WindowAggregate]:
    return reference_window_aggregates(events, Settings())


@pytest.fixture(scope="module")
def released(aggregates: list[WindowAggregate]) -> Callable[[bool], list[Frame]]:
    """Every frame of the fixture at k = 10, in exact threshold mode or DP mode (computed once per mode)."""
    cache: dict[bool, list[Frame]] = {}

    def frames(dp: bool) -> list[Frame]:
        if dp not in cache:
            privacy = threshold(min_persons=10, dp_enabled=dp)
            cache[dp] = release_all(aggregates, privacy)
        return cache[dp]

    return frames


@pytest.mark.heavy
@pytest.mark.parametrize("k", [10, 20])
def test_fixture_release_resists_the_differencing_attacker(aggregates: list[WindowAggregate], k: int) -> None:
    assert recovered(release_all(aggregates[:WINDOWS], threshold(min_persons=k))) == {}


def identifier(ev: RawEvent) -> str:
    if isinstance(ev, RawSim):
        return ev.imsi
    if isinstance(ev, RawPayment):
        return ev.account
    assert isinstance(ev, RawTransit)
    return ev.card


def touched(
    with_person: list[WindowAggregate], without: list[WindowAggregate]
) -> set[tuple[tuple[int, int], int, str, str]]:
    """Every ((window, length), res, cell, key) whose value or persons change when the person is left
    out (a minute and the quarter hour of spend that starts with it are two windows)."""
    out = set()
    after = {(a.window_start_ms, a.window_s): a for a in without}
    for a in with_person:
        b = after.get((a.window_start_ms, a.window_s))
        for res, cells in a.cells.items():
            for cell, stats in cells.items():
                for key, m in stats.items():
                    other = b.cells.get(res, {}).get(cell, {}).get(key) if b else None
                    if other is None or other.persons != m.persons or other.value != m.value:
                        out.add(((a.window_start_ms, a.window_s), res, cell, key))
    return out


@pytest.mark.heavy
@pytest.mark.parametrize("dp", [False, True])
def test_followed_persons_are_never_in_a_released_value_under_k(
    events: list[RawEvent],
    aggregates: list[WindowAggregate],
    released: Callable[[bool], list[Frame]],
    dp: bool,
) -> None:
    k = 10
    frames = {((f.window_start_ms, f.window_s), f.res): f for f in released(dp)}
    busiest = [ident for ident, _ in Counter(identifier(e) for e in events).most_common(2)]
    for ident in busiest:
        without = reference_window_aggregates([e for e in events if identifier(e) != ident], Settings())
        keys = touched(aggregates, without)
        assert keys, f"{ident} should appear in the fixture's aggregates"
        by_window = {(a.window_start_ms, a.window_s): a for a in aggregates}
        for start, res, cell, key in keys:
            value = frames[(start, res)].cells[cell][key]
            if value is not None:
                assert by_window[start].cells[res][cell][key].persons >= k, (ident, res, cell, key)
    for a in aggregates:
        assert small_released([frames[((a.window_start_ms, a.window_s), r)] for r in a.cells], a, k) == []


def test_frames_carry_no_pseudonym_or_identifier(
    events: list[RawEvent], released: Callable[[bool], list[Frame]]
) -> None:
    from cityscreen.pseudonym import pseudonymize

    settings = Settings()
    strings: set[str] = set()  # every string in every frame: keys, cells, labels
    for dp in (False, True):
        for f in released(dp):
            strings.add(f.privacy.mechanism)
            for cell, stats in f.cells.items():
                strings.add(cell)
                strings.update(stats)
            for flow in f.flows:
                strings.update((flow.origin, flow.dest, flow.kind))
    text = "\n".join(sorted(strings))
    domains = {RawSim: "imsi", RawPayment: "account", RawTransit: "card"}
    for ev in events[::20]:
        ident = identifier(ev)
        pseudonym = pseudonymize(
            ident,
            ts_ms=ev.ts_ms,
            secret=settings.pseudonym_secret,
            rotation_s=settings.pseudonym_rotation_s,
            domain=domains[type(ev)],
            offset_s=settings.pseudonym_rotation_offset_s,
        )
        assert pseudonym not in text
        assert ident not in text
