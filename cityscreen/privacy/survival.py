"""How much of the city survives the gate: what is kept, not only what is safe."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from cityscreen.aggregates import WindowAggregate
from cityscreen.frames import Frame

POPULATION = "population.persons"


def survival(pairs: list[tuple[WindowAggregate, list[Frame]]]) -> dict[int, dict[str, Any]]:
    """Per resolution, over all windows: share of non-empty cells whose population total is released,
    share of persons in released totals (exact counts), share of non-zero population breakdown values
    released, and share of non-empty cells with anything released at all."""
    acc: dict[int, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for aggregate, frames in pairs:
        for frame in frames:
            a = acc[frame.res]
            for cell, stats in aggregate.cells.get(frame.res, {}).items():
                released = frame.cells.get(cell, {})
                total = stats.get(POPULATION)
                if total is not None and total.persons > 0:
                    a["cells"] += 1
                    a["persons"] += total.persons
                    if released.get(POPULATION) is not None:
                        a["cells_released"] += 1
                        a["persons_released"] += total.persons
                for key, measure in stats.items():
                    if key.startswith(POPULATION + "|") and measure.persons > 0:
                        a["parts"] += 1
                        a["parts_released"] += released.get(key) is not None
                a["cells_any"] += any(v is not None for v in released.values())
    return {
        res: {
            "cells": int(a["cells"]),
            "cell_share": _share(a["cells_released"], a["cells"]),
            "person_share": _share(a["persons_released"], a["persons"]),
            "breakdown_share": _share(a["parts_released"], a["parts"]),
            "any_value_cell_share": _share(a["cells_any"], a["cells"]),
        }
        for res, a in sorted(acc.items(), reverse=True)
    }


def _share(part: float, whole: float) -> float:
    return round(part / whole, 4) if whole else 0.0
