"""The now layer at one tick: the noisy running stock of people present in every cell of the city.

- Keys: every cell overlapping the city's box at each tree resolution, present in every release with
  or without anyone in it, so which keys a frame holds says nothing about the data.
- Values: the kept running stock (settled and bounded, bounded_presence.py) plus the cell's tree noise
  at the tick (continual.py), calibrated per person-day (person_day.py). The noise of a node is keyed
  by the secret, the period, the resolution, the cell and the node, so a replay or a second read gives
  the same value. Where the last final frame released a cell, the value is anchored on it (`anchored`).
- Release: a value is shown only when its noisy value is at least k; resolutions coarser than the
  trees are sums of the coarsest tree's noisy values (every cell's, shown or not), so they cost nothing
  more.
- `RunningStock`: the release side as a stream of moves from every partition.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import h3
import numpy as np

from cityscreen.city import BBox
from cityscreen.privacy.continual import Z_90, CoverNoise, dyadic_cover, running_release
from cityscreen.privacy.person_day import NowBudget


def city_cells(box: BBox, res: int) -> list[str]:
    """Every cell at `res` overlapping the city's box, sorted."""
    corners = [
        (box.min_lat, box.min_lng),
        (box.min_lat, box.max_lng),
        (box.max_lat, box.max_lng),
        (box.max_lat, box.min_lng),
    ]
    return sorted(h3.h3shape_to_cells_experimental(h3.LatLngPoly(corners), res, contain="overlap"))


@dataclass(frozen=True)
class NowRelease:
    """One resolution's provisional values at one tick."""

    res: int
    cells: list[str]
    noisy: np.ndarray  # every cell's noisy running stock (int64)
    sd: np.ndarray  # its noise's standard deviation

    def shown(self, min_persons: int) -> np.ndarray:
        """Which cells' values are released: noisy value at least k."""
        mask: np.ndarray = self.noisy >= min_persons
        return mask

    def interval_90(self) -> np.ndarray:
        """Half-width of each value's 90% interval (the tooltip's)."""
        half: np.ndarray = Z_90 * self.sd
        return half


def stream_labels(period_start_ms: int, res: int, cells: list[str]) -> list[bytes]:
    """One noise stream per (period, resolution, cell) of people present."""
    return [b"now|v1|%d|%d|%s|population.persons" % (period_start_ms, res, c.encode()) for c in cells]


def release_tick(
    stock: Mapping[int, Mapping[str, int]],
    *,
    tick: int,
    period_start_ms: int,
    budget: NowBudget,
    secret: bytes,
    cells: Mapping[int, list[str]],
    coarser: tuple[int, ...] = (),
    covers: Mapping[int, CoverNoise] | None = None,
) -> dict[int, NowRelease]:
    """The now layer at `tick`: `stock[res][cell]` is the bounded running stock at each tree resolution
    (cells not listed hold nobody); `cells[res]` the fixed key set of each resolution; `coarser` the
    resolutions summed from the coarsest tree; `covers` (optional) each resolution's node noise kept
    from the tick before, the same values sampled once."""
    noise = budget.noise(secret) if covers is None else None
    out: dict[int, NowRelease] = {}
    for res in budget.resolutions:
        keys = cells[res]
        known = set(keys)
        stray = [c for c in stock.get(res, {}) if c not in known]
        if stray:
            raise ValueError(
                f"{len(stray)} cells at resolution {res} lie outside the city's key set (e.g. {stray[0]}): "
                "positions outside the city's box must be dropped at ingest"
            )
        true = np.array([stock.get(res, {}).get(c, 0) for c in keys], dtype=np.int64)
        if noise is None:
            assert covers is not None
            noisy = true + covers[res].running(tick)
        else:
            noisy = running_release(true, stream_labels(period_start_ms, res, keys), tick, noise)
        out[res] = NowRelease(res, keys, noisy, np.full(len(keys), budget.sd(tick)))
    base = out[min(budget.resolutions)]
    for res in coarser:
        out[res] = summed(base, res)
    return out


def summed(fine: NowRelease, res: int) -> NowRelease:
    """A coarser resolution as sums of every fine cell's noisy value (post-processing)."""
    parents = [h3.cell_to_parent(c, res) for c in fine.cells]
    keys = sorted(set(parents))
    index = {c: i for i, c in enumerate(keys)}
    at = np.array([index[p] for p in parents], dtype=np.int64)
    noisy = np.bincount(at, weights=fine.noisy, minlength=len(keys)).round().astype(np.int64)
    var = np.bincount(at, weights=fine.sd**2, minlength=len(keys))
    return NowRelease(res, keys, noisy, np.sqrt(var))


def anchored(
    now: Mapping[int, NowRelease],
    at_final: Mapping[int, NowRelease],
    final: Mapping[int, Mapping[str, int]],
    *,
    tick: int,
    final_tick: int,
) -> dict[int, NowRelease]:
    """The now layer anchored on the last final frame: where the final frame released a cell's value
    (public), show that value plus the noisy change since (`now` minus `at_final`, the tree's values at
    `tick` and at the final window's last tick); elsewhere the running value itself. Both are
    post-processing of the tree's output and of what the gate released, so they cost no more budget,
    and the kept track's lag behind the exact one (people on the way) counts only since the final
    window, not since the period began."""
    if not 0 < final_tick <= tick:
        raise ValueError(f"the final frame's tick ({final_tick}) must lie in 1..{tick}")
    cover, cover_final = set(dyadic_cover(tick)), set(dyadic_cover(final_tick))
    share = math.sqrt(len(cover ^ cover_final) / len(cover))  # the difference's sd over the value's
    out: dict[int, NowRelease] = {}
    for res, release in now.items():
        before = at_final[res]
        if before.cells != release.cells:
            raise ValueError(f"resolution {res}: the two ticks were released over different cells")
        known = final.get(res, {})
        has = np.array([c in known for c in release.cells], dtype=bool)
        base = np.array([known.get(c, 0) for c in release.cells], dtype=np.int64)
        noisy = np.where(has, base + release.noisy - before.noisy, release.noisy)
        sd = np.where(has, release.sd * share, release.sd)
        out[res] = NowRelease(res, release.cells, noisy, sd)
    return out


class RunningStock:
    """The release side of the now layer over one period: moves of every partition (cell left, cell
    entered, time; no person), folded into each cell's running stock tick by tick, then released.
    A tick is released once every partition's watermark has passed its end; a move for a tick
    already released means a watermark lied, and is refused. Once a window's final frame is out
    (`final`), later ticks are anchored on it (`anchored`)."""

    KEEP_WINDOWS = 8  # window ends whose running values are kept for a final frame still to come

    def __init__(
        self,
        budget: NowBudget,
        *,
        period_start_ms: int,
        secret: bytes,
        cells: Mapping[int, list[str]],
        window_ticks: int,
        coarser: tuple[int, ...] = (),
    ) -> None:
        self.budget, self.period_start_ms, self.secret = budget, period_start_ms, secret
        self.cells, self.coarser, self.window_ticks = cells, coarser, window_ticks
        self.stock: dict[int, dict[str, int]] = {res: {} for res in budget.resolutions}
        self.released_tick = 0
        self._pending: dict[int, list[tuple[int, str, int]]] = {}  # tick -> (res, cell, +1 or -1)
        self._window_ends: dict[int, dict[int, dict[str, int]]] = {}  # window's last tick -> its stock
        self._anchor: tuple[int, dict[int, NowRelease], Mapping[int, Mapping[str, int]]] | None = None
        noise = budget.noise(secret)
        labels = {res: stream_labels(period_start_ms, res, cells[res]) for res in budget.resolutions}
        self._covers = {res: CoverNoise(noise, labels[res]) for res in budget.resolutions}

    def tick_of_ms(self, ts_ms: int) -> int:
        """The tick holding `ts_ms` (ticks count from 1)."""
        return (ts_ms - self.period_start_ms) // (self.budget.tick_s * 1000) + 1

    def add(self, res: int, moves: list[tuple[int, str | None, str | None]]) -> None:
        """Moves at resolution `res`: (ts_ms, cell left or None, cell entered or None)."""
        for ts_ms, left, entered in moves:
            tick = self.tick_of_ms(ts_ms)
            if tick <= self.released_tick:
                raise ValueError(
                    f"a move at tick {tick} arrived after tick {self.released_tick} was released: a "
                    "partition's watermark passed a move it had not sent"
                )
            pending = self._pending.setdefault(tick, [])
            if left is not None:
                pending.append((res, left, -1))
            if entered is not None:
                pending.append((res, entered, 1))

    def release(self, tick: int) -> dict[int, NowRelease]:
        """The now layer at the end of `tick`: every move up to it folded in, noise, and the anchor on
        the last final frame. Window ends passed on the way keep their stock, for a final frame to come."""
        if tick <= self.released_tick:
            raise ValueError(f"tick {tick} is not after the last released tick {self.released_tick}")
        first_end = (self.released_tick // self.window_ticks + 1) * self.window_ticks
        for end in range(first_end, tick + 1, self.window_ticks):
            self._fold(end)
            self._window_ends[end] = {res: dict(cells) for res, cells in self.stock.items()}
        for old in sorted(self._window_ends)[: -self.KEEP_WINDOWS]:
            del self._window_ends[old]
        self._fold(tick)
        running = self._noisy(self.stock, tick, self._covers)
        self.released_tick = tick
        if self._anchor is None:
            return running
        final_tick, at_final, final = self._anchor
        return anchored(running, at_final, final, tick=tick, final_tick=final_tick)

    def final(self, final_tick: int, released: Mapping[int, Mapping[str, int]]) -> None:
        """A window's final frame is out: `released[res][cell]`, what the gate released of people
        present at its end (`final_tick`, the window's last tick)."""
        stock = self._window_ends.get(final_tick)
        if stock is None:
            raise ValueError(
                f"no running values kept for tick {final_tick}: a final frame must end a window released "
                f"within the last {self.KEEP_WINDOWS} windows"
            )
        if self._anchor is None or final_tick > self._anchor[0]:
            # the tree's values at the window's end, computed once per final frame rather than at every
            # window end passed (without the cover cache, which holds the newest tick's nodes)
            self._anchor = (final_tick, self._noisy(stock, final_tick, None), released)

    def _fold(self, tick: int) -> None:
        """Apply every pending move up to `tick` to the stock."""
        for t in sorted(t for t in self._pending if t <= tick):
            for res, cell, sign in self._pending.pop(t):
                count = self.stock[res].get(cell, 0) + sign
                if count:
                    self.stock[res][cell] = count
                else:
                    self.stock[res].pop(cell, None)

    def _noisy(
        self, stock: Mapping[int, Mapping[str, int]], tick: int, covers: Mapping[int, CoverNoise] | None
    ) -> dict[int, NowRelease]:
        return release_tick(
            stock,
            tick=tick,
            period_start_ms=self.period_start_ms,
            budget=self.budget,
            secret=self.secret,
            cells=self.cells,
            coarser=self.coarser,
            covers=covers,
        )
