"""Fused indicators: numbers that combine the three sources, computed ONLY from released frame values.

They read the current frame and the previous frame at the same resolution, never an exact aggregate, so
they add no information beyond what the gate already released (post-processing). A value suppressed in
either input yields no indicator for that cell.
"""

from __future__ import annotations

from cityscreen.frames import Frame

PERSONS = "population.persons"
AMOUNT = "payments.amount_cny"
TAP_IN = "transit.tap_in"
TAP_OUT = "transit.tap_out"


def _num(stats: dict[str, float | None] | None, key: str) -> float | None:
    if stats is None:
        return None
    return stats.get(key)


def fused_indicators(frame: Frame, previous: Frame | None) -> dict[str, dict[str, float]]:
    """cell -> indicator -> value:
    - spend_per_person_cny: released spend / released persons present;
    - population_change: released persons now minus in the previous window;
    - transit_net_arrivals: released tap-outs minus tap-ins;
    - arrivals_share_of_change: transit net arrivals / population change (when the change is non-zero).
    """
    prev_cells = previous.cells if previous is not None and previous.res == frame.res else {}
    out: dict[str, dict[str, float]] = {}
    for cell, stats in frame.cells.items():
        ind: dict[str, float] = {}
        persons, amount = _num(stats, PERSONS), _num(stats, AMOUNT)
        if persons and amount is not None:
            ind["spend_per_person_cny"] = round(amount / persons, 2)
        before = _num(prev_cells.get(cell), PERSONS)
        change = persons - before if persons is not None and before is not None else None
        if change is not None:
            ind["population_change"] = change
        taps_in, taps_out = _num(stats, TAP_IN), _num(stats, TAP_OUT)
        if taps_in is not None and taps_out is not None:
            ind["transit_net_arrivals"] = taps_out - taps_in
            if change:
                ind["arrivals_share_of_change"] = round((taps_out - taps_in) / change, 3)
        if ind:
            out[cell] = ind
    return out
