"""The release gate: the only way from exact window aggregates to publishable frames.

Threshold mode: distinct-person threshold k, dominance rule on amounts, complementary suppression to
a fixpoint checked by the differencing auditor (`suppression`). Released values are exact and every
released total equals the sum of its parts wherever an observer could subtract.
DP mode: the same person threshold and dominance rule, then keyed noise on every released value and a
noisy threshold (noisy count >= k). Noise makes differences noisy, so complementary suppression is not
applied, and released totals are not re-made consistent with their parts (documented in docs/privacy.md).
Stock noise (threshold mode with `stock_noise`): the person counts (people present, a stock, and active
persons) are released as in DP mode, the rest of the window as in threshold mode. No equation links the
two parts (equations stay within a metric), so each is gated on its own and the frames are joined. Their
noise is drawn per true value, not per window (`stable_draw`): a count that holds over many windows is
released with the same noise each time, so averaging the windows cannot wear it down.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator

import msgspec
import numpy as np

from cityscreen.aggregates import LAYERS, WindowAggregate
from cityscreen.frames import FRAME_VERSION, Frame, FramePrivacy, ReleasedFlow
from cityscreen.privacy.accountant import PERSON_LAYERS, Budget, budget, family_name, noised_layers
from cityscreen.privacy.noise import (
    discrete_gaussian,
    fresh_draw,
    keyed_uniform,
    laplace,
    noise_rng,
    stable_draw,
)
from cityscreen.privacy.structure import AMOUNT_METRICS, Structure, build_structure
from cityscreen.privacy.suppression import primary, suppress
from cityscreen.privacy.temporal import Memory
from cityscreen.settings import PrivacySettings

ALL_LAYERS = (*LAYERS, "flows")
REST_LAYERS = tuple(layer for layer in ALL_LAYERS if layer not in PERSON_LAYERS)


def release(aggregate: WindowAggregate, privacy: PrivacySettings, *, published_ms: int) -> list[Frame]:
    """Frames for every resolution of the window (finest first); suppressed values are None."""
    return release_kept(aggregate, privacy, published_ms=published_ms)[0]


def release_kept(
    aggregate: WindowAggregate, privacy: PrivacySettings, *, published_ms: int, previous: Memory | None = None
) -> tuple[list[Frame], Memory | None]:
    """`release`, and what the gate keeps for the next window of the same span (threshold mode with
    `across_time` only: None otherwise). `previous`: what it kept of the window just before, if any."""
    if not privacy.stock_noise or privacy.dp_enabled:
        return _release(aggregate, privacy, published_ms, previous, noisy=privacy.dp_enabled)
    covered = aggregate.layers or ALL_LAYERS
    with_counts = any(layer in PERSON_LAYERS for layer in covered)
    if not with_counts or all(layer in PERSON_LAYERS for layer in covered):  # one kind only: no split
        return _release(aggregate, privacy, published_ms, previous, noisy=with_counts)
    counts, rest = (only_layers(aggregate, layers) for layers in (PERSON_LAYERS, REST_LAYERS))
    noisy, _ = _release(counts, privacy, published_ms, None, noisy=True)
    exact, kept = _release(rest, privacy, published_ms, previous, noisy=False)
    return [_joined(n, e) for n, e in zip(noisy, exact, strict=True)], kept


def only_layers(aggregate: WindowAggregate, layers: tuple[str, ...]) -> WindowAggregate:
    """The window with the statistics of `layers` only (cells left empty dropped)."""
    covered = [layer for layer in aggregate.layers or ALL_LAYERS if layer in layers]
    cells = {
        res: {
            cell: kept
            for cell, stats in by_cell.items()
            if (kept := {key: m for key, m in stats.items() if key.partition(".")[0] in layers})
        }
        for res, by_cell in aggregate.cells.items()
    }
    flows = aggregate.flows if "flows" in layers else []
    return msgspec.structs.replace(aggregate, cells=cells, flows=flows, layers=covered)


def _joined(noisy: Frame, exact: Frame) -> Frame:
    """One frame of both parts: cells in cell order (as the full gate and the shards list them), the person
    counts' values first in each (the full gate keeps each cell's order of arrival)."""
    cells = {cell: dict(values) for cell, values in noisy.cells.items()}
    for cell, values in exact.cells.items():
        cells.setdefault(cell, {}).update(values)
    return msgspec.structs.replace(
        noisy,
        cells=dict(sorted(cells.items())),
        flows=exact.flows,
        spans={**noisy.spans, **exact.spans},
        privacy=msgspec.structs.replace(noisy.privacy, mechanism=f"{noisy.privacy.mechanism}+threshold"),
    )


def _release(
    aggregate: WindowAggregate,
    privacy: PrivacySettings,
    published_ms: int,
    previous: Memory | None,
    *,
    noisy: bool,
) -> tuple[list[Frame], Memory | None]:
    resolutions = sorted(aggregate.cells, reverse=True)
    structure = build_structure(aggregate)
    kept: Memory | None = None
    k = privacy.min_persons
    if noisy:
        plan = budget(
            privacy, window_s=aggregate.window_s, resolutions=resolutions, layers=noised_layers(privacy)
        )
        values, hidden = _noisy(aggregate, structure, privacy, plan)
        flows = _noisy_flows(aggregate, privacy, plan)
        frame_privacy = FramePrivacy(k, True, plan.epsilon_per_window, plan.mechanism)
    else:
        before = None if previous is None or not privacy.across_time else previous.previous()
        hidden = suppress(
            structure,
            k,
            privacy.dominance_share,
            min_whole_numbers=privacy.interval_min_whole_numbers,
            dimensions=privacy.presence_protected_dimensions,
            previous=before,
        )
        if privacy.across_time:
            kept = Memory.of(aggregate, hidden)
        values = structure.value
        flows = [
            ReleasedFlow(f.origin, f.dest, f.kind, float(f.persons) if f.persons >= k else None)
            for f in aggregate.flows
        ]
        frame_privacy = FramePrivacy(k, False, 0.0, "threshold")
    per_res = _cells(structure, hidden, shown_numbers(values))
    span = [aggregate.window_start_ms, aggregate.window_end_ms]
    spans = {layer: span for layer in aggregate.layers or ALL_LAYERS}
    frames = [
        Frame(
            v=FRAME_VERSION,
            window_start_ms=aggregate.window_start_ms,
            window_s=aggregate.window_s,
            res=res,
            published_ms=published_ms,
            privacy=frame_privacy,
            cells=per_res.get(res, {}),
            flows=flows,
            spans=spans,
        )
        for res in resolutions
    ]
    return frames, kept


def _cells(
    structure: Structure, hidden: np.ndarray, shown: list[float]
) -> dict[int, dict[str, dict[str, float | None]]]:
    """res -> cell -> key -> released value (None: suppressed), cells and keys in variable order."""
    out: list[float | None] = [
        None if hide else value for hide, value in zip(hidden.tolist(), shown, strict=True)
    ]
    per_res: dict[int, dict[str, dict[str, float | None]]] = defaultdict(dict)
    if structure.cells:  # each cell's variables are consecutive: one dict per cell
        first = 0
        for res, cell, keys in structure.cells:
            if keys:
                per_res[res][cell] = dict(zip(keys, out[first : first + len(keys)], strict=True))
                first += len(keys)
        return per_res
    for (res, cell, key), value in zip(structure.keys, out, strict=True):
        per_res[res].setdefault(cell, {})[key] = value
    return per_res


def shown_numbers(values: np.ndarray) -> list[float]:
    """Released numbers to the cent: np.round on the array does what round(np.float64, 2) does value
    by value (same multiply, rint, divide), in one call."""
    return list(np.round(values, 2).tolist())


def _draw(
    privacy: PrivacySettings, plan: Budget, scale: float, *, draw: str, res: int, cell: str, stat: str
) -> float:
    if plan.mechanism == "laplace":
        return laplace(keyed_uniform(privacy.dp_seed, draw=draw, res=res, cell=cell, stat=stat), scale)
    rng = noise_rng(privacy.dp_seed, draw=draw, res=res, cell=cell, stat=stat)
    return float(discrete_gaussian(rng, scale))


def _noisy(
    aggregate: WindowAggregate, structure: Structure, privacy: PrivacySettings, plan: Budget
) -> tuple[np.ndarray, np.ndarray]:
    """Noisy values (counts rounded, post-processing) and the mask of what stays hidden. DP mode draws
    each window's noise afresh; stock noise draws it per true value (module docstring)."""
    k = privacy.min_persons
    stable = not privacy.dp_enabled
    window = fresh_draw(aggregate.window_start_ms)
    hidden = primary(structure, k, privacy.dominance_share)
    scales = {fam.name: plan.scale(fam) for fam in plan.families}
    family_scale: dict[tuple[int, str], float | None] = {}  # (res, stat) -> its family's scale
    exact = structure.value.tolist()
    values = [0.0] * len(structure.keys)
    # the values primary leaves shown, ascending: the loop only ever hides the value at hand
    for i in np.flatnonzero(~hidden).tolist():
        res, cell, key = structure.keys[i]
        scale = family_scale.get((res, key), -1.0)
        if scale == -1.0:
            scale = family_scale[(res, key)] = scales.get(family_name(res, key))
        if scale is None:  # not in the accounted budget: never released under DP
            hidden[i] = True
            continue
        draw = stable_draw(aggregate.window_s, exact[i]) if stable else window
        noisy = exact[i] + _draw(privacy, plan, scale, draw=draw, res=res, cell=cell, stat=key)
        if structure.metric[i] in AMOUNT_METRICS:
            values[i] = max(0.0, round(noisy))
        else:
            values[i] = max(0.0, float(round(noisy)))
            if values[i] < k:  # the noisy threshold
                hidden[i] = True
    return np.array(values, dtype=float), hidden


def _noisy_flows(aggregate: WindowAggregate, privacy: PrivacySettings, plan: Budget) -> list[ReleasedFlow]:
    k = privacy.min_persons
    scales = {fam.name: plan.scale(fam) for fam in plan.families}
    out = []
    for f in aggregate.flows:
        scale = scales.get(f"flows:{f.kind}")
        persons: float | None = None
        if scale is not None and f.persons >= k:
            noise = _draw(
                privacy,
                plan,
                scale,
                draw=fresh_draw(aggregate.window_start_ms),
                res=aggregate.flow_res,
                cell=f"{f.origin}>{f.dest}",
                stat=f"flows.{f.kind}",
            )
            noisy = float(round(f.persons + noise))
            persons = noisy if noisy >= k else None
        out.append(ReleasedFlow(f.origin, f.dest, f.kind, persons))
    return out


def release_series(
    aggregates: Iterable[WindowAggregate], privacy: PrivacySettings, *, published_ms: int = 0
) -> Iterator[tuple[WindowAggregate, list[Frame]]]:
    """Each window's frames, released in the order given with what the gate kept of the window before
    it of the same length, as the release sink does (streams/release.py)."""
    kept: dict[int, Memory | None] = {}
    for aggregate in aggregates:
        frames, kept[aggregate.window_s] = release_kept(
            aggregate, privacy, published_ms=published_ms, previous=kept.get(aggregate.window_s)
        )
        yield aggregate, frames
