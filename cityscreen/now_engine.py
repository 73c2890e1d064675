"""The now worker's pure core: clean sim batches of every partition in, a provisional frame per resolution
per tick out (issue 15; the privacy of what it releases: cityscreen/privacy/now_layer.py and
person_day.py).

- Each partition's reports go through its own `NowTracker` (a person's reports all sit in one partition:
  the clean topics are keyed by pseudonym), cells at the finest tree resolution, coded as H3 integers.
- A partition's watermark trails its newest report by `lateness_s`; one silent for `idle_s` of wall time
  holds nothing back. A report behind its tracker's watermark is left off the now layer and counted
  (`late_reports`): the final frame still counts it.
- `step` releases the newest complete tick under the slowest active partition's watermark: every
  tracker advances to the tick's end, their moves (no person in them) go into one `RunningStock`, and
  each resolution's values become a `NowFrame`.
- A period (the pseudonym key's day) is one tree and one budget: reports of the next period wait until
  the watermark reaches it, then everything restarts from nobody, as the pseudonyms do.
- `anchor` takes what a final frame released of people present, so later ticks show it plus the noisy
  change since (post-processing: no budget).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import h3
import numpy as np

from cityscreen.aggregate.rows import parent_ids
from cityscreen.city import BBox
from cityscreen.clean_batch import CleanBatch
from cityscreen.errors import CityScreenError
from cityscreen.frames import FRAME_VERSION, DayBudget, Frame, FramePrivacy, NowFrame
from cityscreen.privacy import zcdp
from cityscreen.privacy.now_layer import NowRelease, RunningStock, city_cells
from cityscreen.privacy.now_tracker import Move, NowTracker, moves_at
from cityscreen.privacy.person_day import NowBudget, now_budget
from cityscreen.pseudonym import period_start_ms
from cityscreen.settings import Settings

STAT = "population.persons"
Report = tuple[int, int, int]  # (person key, ts_ms, cell as an H3 integer)
MECHANISM = "continual-tree"


@dataclass
class _Partition:
    tracker: NowTracker
    newest_ms: int | None = None
    seen_s: float = 0.0  # wall time (monotonic seconds) of its last report
    waiting: list[Report] = field(default_factory=list)  # the next period's reports


@dataclass
class _Period:
    """One pseudonym period: one tree, one budget."""

    start_ms: int
    end_ms: int
    stock: RunningStock


def key_cells(box: BBox, resolutions: tuple[int, ...]) -> dict[int, list[str]]:
    """Each tree resolution's fixed keys: the cells overlapping the city's box, and at a coarser one also
    the parents of the finer keys (an H3 parent need not overlap what its children do). They depend on
    the public box only, never on the data."""
    fine = max(resolutions)
    out = {fine: city_cells(box, fine)}
    for res in sorted(resolutions, reverse=True)[1:]:
        parents = {h3.cell_to_parent(c, res) for c in out[fine]}
        out[res] = sorted(parents | set(city_cells(box, res)))
    return out


class NowEngine:
    def __init__(self, settings: Settings, box: BBox) -> None:
        check_now_settings(settings)
        now = settings.now
        self.settings = settings
        self.budget: NowBudget = now_budget(now, period_s=settings.pseudonym_rotation_s)
        self.fine = max(self.budget.resolutions)
        self.cells = key_cells(box, self.budget.resolutions)
        self._known = np.array(sorted(h3.str_to_int(c) for c in self.cells[self.fine]), dtype=np.uint64)
        self.coarser = tuple(r for r in settings.window.resolutions if r < min(self.budget.resolutions))
        self.tick_ms = now.tick_s * 1000
        self.lateness_ms = round(now.lateness_s * 1000)
        self.parts: dict[int, _Partition] = {}
        self.period: _Period | None = None
        self.late_reports = 0  # behind their partition's watermark: left off the now layer
        self.outside_reports = 0  # in a cell outside the city's keys
        self._fine_names = {h3.str_to_int(c): c for c in self.cells[self.fine]}  # tracker cell code -> name

    def add(self, partition: int, batch: CleanBatch, wall_s: float) -> None:
        """A clean sim batch of `partition` (other kinds hold no positions for the now layer)."""
        if batch.kind != "sim" or not batch.n:
            return
        cells = batch.cell if batch.res == self.fine else parent_ids(batch.cell, self.fine)
        inside = np.isin(cells, self._known)
        self.outside_reports += int((~inside).sum())
        persons, stamps = batch.person_keys[inside].tolist(), batch.ts_ms[inside].tolist()
        reports = list(zip(persons, stamps, cells[inside].tolist(), strict=True))
        if self.period is None and reports:
            self._start_period(period_start(self.settings, min(stamps)))
        part = self.parts.setdefault(partition, self._new_partition())
        part.seen_s = wall_s
        self._feed(part, reports)

    def _feed(self, part: _Partition, reports: list[Report]) -> None:
        if self.period is None or not reports:
            return
        # a report before the released tick's end is late, also for a partition seen for the first time
        released_end = self.period.start_ms + self.period.stock.released_tick * self.tick_ms
        low = max(part.tracker.watermark_ms or 0, released_end)
        now = [r for r in reports if low <= r[1] < self.period.end_ms]
        later = [r for r in reports if r[1] >= self.period.end_ms]
        part.waiting += later
        self.late_reports += len(reports) - len(now) - len(later)
        part.tracker.feed(now)
        newest = max(r[1] for r in reports)
        part.newest_ms = newest if part.newest_ms is None else max(part.newest_ms, newest)

    def watermark_ms(self, wall_s: float, behind: Collection[int] = ()) -> int | None:
        """The slowest active partition's newest report less the lateness; None while a partition with
        records still to read (`behind`: the shell knows from Kafka's end offsets) has sent none yet.
        A partition is active while behind or heard from within `idle_s`; when none is (the feed
        stopped), everything has arrived and the newest report of all counts."""
        idle_s = self.settings.now.idle_s
        heard = {key for key, p in self.parts.items() if p.newest_ms is not None}
        if any(key not in heard for key in behind):
            return None  # its first records are still on their way: nothing is complete yet
        seen = [(p.newest_ms, key, p.seen_s) for key, p in self.parts.items() if p.newest_ms is not None]
        if not seen:
            return None
        active = [newest for newest, key, seen_s in seen if key in behind or wall_s - seen_s < idle_s]
        mark = min(active) if active else max(newest for newest, _, _ in seen)
        return mark - self.lateness_ms

    def step(self, wall_s: float, published_ms: int, behind: Collection[int] = ()) -> list[NowFrame]:
        """Release the newest complete tick under the watermark, when there is a new one."""
        mark = self.watermark_ms(wall_s, behind)
        if mark is None or self.period is None:
            return []
        while mark >= self.period.end_ms:  # the period is over: its last tick, then the next period
            if self.period.stock.released_tick < self.budget.ticks_per_period:
                self._release(self.period, self.budget.ticks_per_period)
            self._start_period(self.period.end_ms)
        period = self.period
        tick = (mark - period.start_ms) // self.tick_ms
        if tick <= period.stock.released_tick:
            return []
        return self._frames(period, tick, self._release(period, tick), published_ms)

    def _release(self, period: _Period, tick: int) -> dict[int, NowRelease]:
        end_ms = period.start_ms + tick * self.tick_ms
        moves: list[Move] = []
        for part in self.parts.values():
            moves += part.tracker.advance(end_ms)
        for res in self.budget.resolutions:
            period.stock.add(res, moves_at(moves, self._fine_names, res))
        return period.stock.release(tick)

    def anchor(self, window_start_ms: int, window_s: int, released: Mapping[int, Mapping[str, int]]) -> bool:
        """A final frame's people present (`released[res][cell]`, what the gate released for the window);
        False when it cannot anchor this period's ticks (another period, or not released here yet)."""
        period = self.period
        if period is None:
            return False
        since_ms = window_start_ms + window_s * 1000 - period.start_ms
        if not 0 < since_ms <= period.end_ms - period.start_ms or since_ms % self.tick_ms:
            return False
        final_tick = since_ms // self.tick_ms
        if final_tick > period.stock.released_tick:
            return False
        try:
            period.stock.final(final_tick, released)
        except ValueError:
            return False  # older than the running values kept for anchoring
        return True

    def _frames(
        self, period: _Period, tick: int, releases: dict[int, NowRelease], published_ms: int
    ) -> list[NowFrame]:
        tick_ms = period.start_ms + tick * self.tick_ms
        window_s = self.settings.window.window_s
        window_start = (tick_ms - 1) - (tick_ms - 1) % (window_s * 1000)
        k = self.settings.privacy.min_persons
        b = self.budget
        rho = b.rho_spent(tick)
        budget = DayBudget(period.start_ms, b.epsilon, b.delta, b.rho, rho, zcdp.epsilon(rho, b.delta))
        privacy = FramePrivacy(min_persons=k, dp_enabled=True, epsilon=b.epsilon, mechanism=MECHANISM)
        head: dict[str, Any] = {"v": FRAME_VERSION, "window_start_ms": window_start, "window_s": window_s}
        head |= {"tick_ms": tick_ms, "published_ms": published_ms, "privacy": privacy, "budget": budget}
        return [_now_frame(releases[res], k, head) for res in sorted(releases, reverse=True)]

    def _new_partition(self) -> _Partition:
        now = self.settings.now
        tracker = NowTracker(
            ttl_ms=self.settings.window.presence_ttl_s * 1000,
            settle_ms=now.settle_s * 1000,
            max_changes=now.max_changes_per_day,
        )
        return _Partition(tracker)

    def _start_period(self, start_ms: int) -> None:
        stock = RunningStock(
            self.budget,
            period_start_ms=start_ms,
            secret=self.settings.privacy.dp_seed.encode(),
            cells=self.cells,
            window_ticks=self.settings.window.window_s // self.settings.now.tick_s,
            coarser=self.coarser,
        )
        self.period = _Period(start_ms, start_ms + self.settings.pseudonym_rotation_s * 1000, stock)
        for key, part in list(self.parts.items()):
            fresh = self._new_partition()
            fresh.newest_ms, fresh.seen_s = part.newest_ms, part.seen_s
            self.parts[key] = fresh
            self._feed(fresh, part.waiting)


def released_people(frame: Frame) -> dict[str, int]:
    """What a final frame released of people present, per cell (suppressed and absent cells left out):
    the now layer's anchor."""
    out = {}
    for cell, stats in frame.cells.items():
        value = stats.get(STAT)
        if value is not None:
            out[cell] = round(value)
    return out


def _now_frame(rel: NowRelease, min_persons: int, head: dict[str, Any]) -> NowFrame:
    """One resolution's frame: every key, `None` where the noisy value is under the threshold."""
    shown = rel.shown(min_persons).tolist()
    values = rel.noisy.tolist()
    cells = {c: {STAT: float(v) if s else None} for c, v, s in zip(rel.cells, values, shown, strict=True)}
    noise_sd = {c: round(sd, 2) for c, sd in zip(rel.cells, rel.sd.tolist(), strict=True)}
    return NowFrame(res=rel.res, cells=cells, noise_sd=noise_sd, **head)


def check_now_settings(settings: Settings) -> None:
    """Refuse now settings the pipeline cannot serve, with the fix (a Settings validator would refuse
    them for every command, the now layer's or not)."""
    now, w = settings.now, settings.window
    if w.window_s % now.tick_s:
        raise CityScreenError(
            f"CITY_NOW__TICK_S ({now.tick_s}) must divide CITY_WINDOW__WINDOW_S ({w.window_s}): a final "
            "frame anchors the now layer at its window's last tick"
        )
    if not now.resolutions or not set(now.resolutions) <= set(w.resolutions):
        raise CityScreenError(
            f"CITY_NOW__RESOLUTIONS ({now.resolutions}) must be a non-empty subset of the released "
            f"resolutions {w.resolutions} (CITY_WINDOW__H3_RES and CITY_WINDOW__ROLLUP_RES)"
        )
    if now.settle_s >= w.presence_ttl_s:
        raise CityScreenError(
            f"CITY_NOW__SETTLE_S ({now.settle_s}) must be below CITY_WINDOW__PRESENCE_TTL_S "
            f"({w.presence_ttl_s}): a person must settle in a cell before they expire"
        )


def period_start(settings: Settings, at_ms: int) -> int:
    """Start of the pseudonym period holding `at_ms` (the now layer's day)."""
    return period_start_ms(at_ms, settings.pseudonym_rotation_s, settings.pseudonym_rotation_offset_s)
