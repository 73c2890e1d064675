"""The interval attacker across time (issue 14, item 6). Consecutive minutes of the stock share most of
their persons: at night few people move, so most values of one minute are the next minute's too. A
reader who knows where the truth persists (the strongest form of that guess) adds
value(before) = value(after) for those keys to both minutes' equations and solves them as one system.

A finding is then a suppressed value of either minute that the joint system pins, or a protected
category under k persons that it proves present, which neither minute alone gave away. A value hidden in
one minute and released in the other, unchanged, is no finding (`secrets_only`): it was published.

Some findings no release of the later minute can prevent: the earlier release, the key sets and the
granted persistence give them away with the later minute all hidden (a newcomer's age bands, when its
parent's and every neighbour's persisted, are 0 but its own). `beyond_given` is what the later release
adds to those: what a gate that knows the earlier minute answers for.
"""

from __future__ import annotations

import msgspec

from cityscreen.aggregates import WindowAggregate
from cityscreen.frames import Frame
from tests.support.interval_attacker import Interval, Knowledge, findings, persons_of, solve_system
from tests.support.privacy_helpers import VarKey, knowledge, truth_of

Key = tuple[int, int, str, str]  # (window start, res, cell, stat key)


def persisting(before: WindowAggregate, after: WindowAggregate) -> set[VarKey]:
    """The keys whose true value is the same in both windows: what this attacker is granted. Every key
    a frame lists counts, an empty category of a breakdown too (the engine lists them; an empty one
    that stayed empty persisted), so the truth is read with the breakdowns' categories filled in."""
    old = truth_of(before)
    return {key for key, value in truth_of(after).items() if old.get(key) == value}


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


def secrets_only(
    found: dict[Key, Interval], before: list[Frame], after: list[Frame], persist: set[VarKey]
) -> dict[Key, Interval]:
    """`found` less the hidden values whose unchanged twin the other minute released."""
    shown = [
        {(f.res, cell, key) for f in frames for cell, values in f.cells.items() for key, v in values.items()
         if v is not None}
        for frames in (before, after)
    ]  # fmt: skip
    starts = (before[0].window_start_ms, after[0].window_start_ms)
    out = {}
    for (start, res, cell, key), interval in found.items():
        other = shown[1] if start == starts[0] else shown[0]
        if not ((res, cell, key) in persist and (res, cell, key) in other):
            out[(start, res, cell, key)] = interval
    return out


def blank(frames: list[Frame]) -> list[Frame]:
    """The frames with every value hidden, keys kept: the least a release of that window can say."""
    return [
        msgspec.structs.replace(
            f,
            cells={c: dict.fromkeys(v) for c, v in f.cells.items()},
            flows=[msgspec.structs.replace(flow, persons=None) for flow in f.flows],
        )
        for f in frames
    ]


def beyond_given(
    windows: list[WindowAggregate], before: list[Frame], after: list[Frame], k: int
) -> tuple[list[Key], list[Key]]:
    """(pinned, proven present) across the two minutes that are not found with `after` blank."""
    persist = persisting(*windows)
    persons = persons_of(windows)

    def found(later: list[Frame]) -> tuple[list[Key], list[Key]]:
        return findings(secrets_only(across_time(before, later, persist), before, later, persist), persons, k)

    (pinned, present), (pinned0, present0) = found(after), found(blank(after))
    return [p for p in pinned if p not in set(pinned0)], [p for p in present if p not in set(present0)]


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
