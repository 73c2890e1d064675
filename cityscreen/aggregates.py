"""What the aggregators hand to the release gate: exact, unreleased statistics of one window.

Nothing here ever leaves a worker: only `cityscreen.privacy.release` turns a `WindowAggregate` into
frames that may be published. A `WindowAggregate` carries counts and persons, never pseudonyms.

Statistic keys: `"<layer>.<metric>"` for a total and `"<layer>.<metric>|<dimension>=<category>"` for
one part of a breakdown, e.g. `"population.persons|age_band=25-34"`, `"payments.amount_cny|category=food"`.
Within one cell, the parts of a breakdown sum to the total; across resolutions a parent cell's value is
the sum of its children's (each person is placed in one base cell per window and statistic: their last
known position).
"""

from __future__ import annotations

from typing import Literal

import msgspec

FlowKind = Literal["transit", "movement"]

# layer -> metrics; each metric's breakdown dimensions. `population.persons` is people present (each
# person at their last known position within the presence TTL); `active.persons` counts the persons
# with a SIM event in the window (docs/streams.md, Counting rules).
STATISTICS: dict[str, dict[str, tuple[str, ...]]] = {
    "population": {"persons": ("gender", "age_band", "origin")},
    "active": {"persons": ()},
    "payments": {"count": ("category", "origin"), "amount_cny": ("category", "origin")},
    "transit": {"tap_in": ("mode", "line"), "tap_out": ("mode", "line")},
}
LAYERS: tuple[str, ...] = tuple(STATISTICS)


def stat_key(layer: str, metric: str, dimension: str | None = None, category: str | None = None) -> str:
    base = f"{layer}.{metric}"
    return base if dimension is None else f"{base}|{dimension}={category}"


def parse_stat_key(key: str) -> tuple[str, str, str | None, str | None]:
    """(layer, metric, dimension, category); dimension and category are None for a total."""
    head, _, part = key.partition("|")
    layer, _, metric = head.partition(".")
    if not part:
        return layer, metric, None, None
    dimension, _, category = part.partition("=")
    return layer, metric, dimension, category


class Measure(msgspec.Struct, array_like=True, frozen=True):
    """One exact statistic and who is behind it."""

    value: float  # persons, events or CNY, as the metric says
    persons: int  # distinct persons contributing (the privacy unit)
    top_person_value: float = 0.0  # the largest single person's contribution (dominance rule)


class FlowAggregate(msgspec.Struct, frozen=True):
    """Distinct persons who moved from `origin` to `dest` (cells at the flow resolution) in the window."""

    origin: str
    dest: str
    kind: FlowKind
    persons: int


class WindowAggregate(msgspec.Struct):
    """Every exact statistic of one closed event-time window, at every resolution."""

    window_start_ms: int
    window_s: int
    base_res: int
    flow_res: int
    # resolution -> cell -> stat key -> measure
    cells: dict[int, dict[str, dict[str, Measure]]]
    flows: list[FlowAggregate] = []
    late_events: int = 0  # events that arrived after the grace period (dead-lettered, not counted)
    # the layers this window covers (people present per minute; spend, transit, flows maybe longer);
    # empty: every layer
    layers: list[str] = []

    @property
    def window_end_ms(self) -> int:
        return self.window_start_ms + self.window_s * 1000

    @property
    def coarsest_res(self) -> int:
        """The coarsest resolution released: its cells are the blocks no equation of the gate crosses."""
        return min(self.cells) if self.cells else self.base_res
