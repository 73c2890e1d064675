"""The interval attacker across time (tests/support/temporal_attacker.py), the attacker of issue 14's
item 6: it can fail (it pins a value that only persistence gives away), and with nothing persisting it
knows no more than each window alone. The gate resists it with `privacy.across_time` (off by default:
docs/privacy.md, "Across time"); tests/unit/test_gate_across_time.py has the small cases."""

from __future__ import annotations

from functools import partial

import h3
import pytest

from cityscreen.frames import Frame, FramePrivacy
from cityscreen.privacy import release
from cityscreen.privacy.gate import release_series
from cityscreen.privacy.synthetic import synthetic_windows
from tests.support.factories import SIBLINGS
from tests.support.gate_modes import THRESHOLD, threshold
from tests.support.interval_attacker import findings, intervals, persons_of
from tests.support.night_attack import night
from tests.support.temporal_attacker import across_time, beyond_given, persisting

ACTIVE = "active.persons"  # no breakdown: a hand-made frame needs no categories
A, B, C = SIBLINGS[:3]
PARENT = h3.cell_to_parent(A, 7)


def frames(start_ms: int, res8: dict[str, float | None], res7: float) -> list[Frame]:
    frame = partial(
        Frame,
        v=1,
        window_start_ms=start_ms,
        window_s=60,
        published_ms=0,
        privacy=FramePrivacy(10, False, 0.0),
    )
    return [
        frame(res=8, cells={cell: {ACTIVE: value} for cell, value in res8.items()}),
        frame(res=7, cells={PARENT: {ACTIVE: res7}}),
    ]


def test_a_value_that_persists_is_pinned_by_the_next_window() -> None:
    """A and B hidden under a total of 15; a minute later B (12, unchanged) is shown beside a newcomer C
    and the total is 16. Alone, A is 1 to 14, then 1 to 3; with A and B persisting it is exactly 3."""
    before = frames(0, {A: None, B: None}, 15.0)
    after = frames(60_000, {A: None, B: 12.0, C: None}, 16.0)
    alone = intervals(before + after)
    assert (alone[(0, 8, A, ACTIVE)].lo, alone[(0, 8, A, ACTIVE)].hi) == (1, 14)
    assert (alone[(60_000, 8, A, ACTIVE)].lo, alone[(60_000, 8, A, ACTIVE)].hi) == (1, 3)
    joint = across_time(before, after, {(8, A, ACTIVE), (8, B, ACTIVE)})
    assert (joint[(0, 8, A, ACTIVE)].lo, joint[(0, 8, A, ACTIVE)].hi) == (3, 3)
    assert (joint[(60_000, 8, C, ACTIVE)].lo, joint[(60_000, 8, C, ACTIVE)].hi) == (1, 1)
    only_a = across_time(before, after, {(8, A, ACTIVE)})[(0, 8, A, ACTIVE)]
    assert (only_a.lo, only_a.hi) == (1, 3), "B moved: A is as wide as the next minute says"


def test_with_nothing_persisting_it_knows_what_each_window_alone_gives() -> None:
    windows = [w.aggregate for w in synthetic_windows(persons=600, windows=2, seed=3)]
    before, after = (release(w, THRESHOLD, published_ms=0) for w in windows)
    persist = persisting(*windows)
    assert persist, "two minutes of one synthetic city share values"
    alone, joint = intervals(before + after), across_time(before, after, set())
    assert set(alone) == set(joint)
    persons = persons_of(windows)
    assert findings(alone, persons, 10) == findings(joint, persons, 10)
    narrow = {key for key, iv in alone.items() if iv.whole_numbers() < 3}
    assert {key: alone[key] for key in narrow} == {key: joint[key] for key in narrow}


@pytest.mark.heavy
def test_the_gate_across_time_resists_it_on_a_night_of_the_default_city() -> None:
    """The `make run` city at 03:00 (1,000,000 persons, about 95% of a minute's keys persist). Gated
    minute by minute on its own, the second minute gives away values that the attacker across time
    pins beyond what the first minute, the key sets and the granted persistence give it (`beyond_given`);
    gated with `privacy.across_time`, nothing beyond that."""
    windows = night(1_000_000, 2)
    assert len(windows) == 2
    for across, expect_clean in ((False, False), (True, True)):
        privacy = threshold(across_time=across)
        before, after = (frames for _, frames in release_series(windows, privacy))
        pinned, present = beyond_given(windows, before, after, 10)
        assert (pinned == present == []) is expect_clean, (across, len(pinned), len(present))
