"""The interval attacker across time (issue 14, item 6). Consecutive minutes of the stock share most of
their persons: at night few people move, so most values of one minute are the next minute's too. A
reader who knows where the truth persists (the strongest form of that guess) adds
value(before) = value(after) for those keys to both minutes' equations and solves them as one system.

A finding is then a suppressed value of either minute that the joint system pins, or a protected
category under k persons that it proves present, which neither minute alone gave away.
"""

from __future__ import annotations

from cityscreen.aggregates import WindowAggregate
from cityscreen.frames import Frame
from tests.support.interval_attacker import Interval, Knowledge, measures, solve_system
from tests.support.privacy_helpers import VarKey, knowledge

Key = tuple[int, int, str, str]  # (window start, res, cell, stat key)


def persisting(before: WindowAggregate, after: WindowAggregate) -> set[VarKey]:
    """The keys whose true value is the same in both windows: what this attacker is granted."""
    old = {key: m.value for key, m in measures(before)}
    return {key for key, m in measures(after) if old.get(key) == m.value}


def across_time(before: list[Frame], after: list[Frame], persist: set[VarKey]) -> dict[Key, Interval]:
    """Every suppressed value of both windows under their joint system: each window's own knowledge,
    cells told apart by window, plus value(before) = value(after) for each key of `persist` that both
    frames list (a key listed in one only did not persist: its truth is 0 on the other side)."""
    starts = (before[0].window_start_ms, after[0].window_start_ms)
    systems = [_tagged(knowledge(frames), side) for side, frames in enumerate((before, after))]
    known = systems[0][0] | systems[1][0]
    eqs = systems[0][1] + systems[1][1]
    for res, cell, key in persist:
        pair = ((res, f"0|{cell}", key), (res, f"1|{cell}", key))
        if all(p in known for p in pair):
            eqs.append([(pair[0], 1.0), (pair[1], -1.0)])
    joint: Knowledge = (known, eqs, systems[0][2] | systems[1][2], systems[0][3] | systems[1][3])
    out: dict[Key, Interval] = {}
    for (res, tagged, key), interval in solve_system(joint).items():
        side, _, cell = tagged.partition("|")
        out[(starts[int(side)], res, cell, key)] = interval
    return out


def _tagged(system: Knowledge, side: int) -> Knowledge:
    def tag(v: VarKey) -> VarKey:
        return (v[0], f"{side}|{v[1]}", v[2])

    known, eqs, floors, zeros = system
    return (
        {tag(v): x for v, x in known.items()},
        [[(tag(v), c) for v, c in eq] for eq in eqs],
        {tag(v): x for v, x in floors.items()},
        {tag(v) for v in zeros},
    )
