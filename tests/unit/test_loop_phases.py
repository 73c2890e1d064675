"""A worker loop's slow-iteration line names where the time went (the clock is faked, never timed)."""

from __future__ import annotations

import time

import pytest

from streams.loop_phases import Phases


def test_a_slow_iteration_names_its_phases_and_a_quick_one_says_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock_s = [10.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock_s[0])  # the module loop_phases reads
    slow = Phases()
    for phase, spent_s in (("poll", 0.25), ("step", 1.5), ("poll", 0.25)):
        clock_s[0] += spent_s
        slow.mark(phase)
    assert slow.slow(1.0) == "2.00 s: poll 0.50, step 1.50"
    assert slow.slow(2.5) is None
    quick = Phases()
    clock_s[0] += 0.5
    quick.mark("poll")
    assert quick.slow(1.0) is None
