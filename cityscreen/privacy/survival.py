"""How much of the city survives the gate: what is kept, not only what is safe."""

from __future__ import annotations

import time
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


def survival_report(
    aggregates: list[WindowAggregate],
    *,
    ks: tuple[int, ...] = (10, 20),
    dp_modes: tuple[bool, ...] = (False, True),
) -> list[dict[str, Any]]:
    """Survival at each k, with and without differential privacy (other settings at their defaults)."""
    from cityscreen.privacy.gate import release
    from cityscreen.settings import PrivacySettings

    rows = []
    for k in ks:
        for dp in dp_modes:
            privacy = PrivacySettings.model_validate({"min_persons": k, "dp_enabled": dp})
            started = time.perf_counter()
            pairs = [(a, release(a, privacy, published_ms=0)) for a in aggregates]
            ms = round((time.perf_counter() - started) * 1000 / max(1, len(aggregates)))
            for res, stats in survival(pairs).items():
                rows.append({"k": k, "dp": dp, "res": res, **stats, "gate_ms_per_window": ms})
    return rows


def format_report(rows: list[dict[str, Any]]) -> str:
    head = (
        f"{'k':>3} {'dp':>5} {'res':>3} {'cells':>7} {'cells kept':>10} {'persons kept':>12} "
        f"{'breakdowns kept':>15} {'gate ms/window':>14}"
    )
    lines = [head]
    for r in rows:
        lines.append(
            f"{r['k']:>3} {'on' if r['dp'] else 'off':>5} {r['res']:>3} {r['cells']:>7} "
            f"{r['cell_share']:>10.1%} {r['person_share']:>12.1%} {r['breakdown_share']:>15.1%} "
            f"{r['gate_ms_per_window']:>14}"
        )
    return "\n".join(lines)
