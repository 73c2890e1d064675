"""The now layer as a stream, end to end without Kafka: generator reports split over two partitions'
trackers, their moves folded by one RunningStock, give the very values the batch functions give."""

from __future__ import annotations

import numpy as np

from cityscreen.city import load_city
from cityscreen.privacy.bounded_presence import Changes, bound_changes, coarsened, presence_changes, stock_at
from cityscreen.privacy.now_layer import NowRelease, RunningStock, city_cells, release_tick
from cityscreen.privacy.now_tracker import NowTracker, moves_at
from cityscreen.privacy.person_day import NowBudget, now_budget
from cityscreen.settings import Settings
from services.city_report import PEAK_DAY, local_ms
from services.now_report import Tracks

SECRET = b"stream test secret"
MAX_CHANGES = 3  # small, so that the morning commute reaches it
WINDOW_MS = 60_000
QUARTER_MS = 15 * WINDOW_MS  # released and compared every quarter hour: the noise costs more than the stream


class _Case:
    def __init__(self) -> None:
        self.settings, city = Settings(), load_city()
        self.budget: NowBudget = now_budget(self.settings.now, period_s=self.settings.pseudonym_rotation_s)
        self.start = local_ms(city, PEAK_DAY, 4)
        self.until = self.start + 4 * 3_600_000  # 04:00 to 08:00
        self.tracks = Tracks(city, 600, 7, self.start, self.until, self.budget.resolutions)
        self.ttl_ms = self.settings.window.presence_ttl_s * 1000
        self.settle_ms = self.settings.now.settle_s * 1000
        self.cells = {r: city_cells(city.bbox, r) for r in self.budget.resolutions}

    def tick(self, at_ms: int) -> int:
        return (at_ms - self.start) // (self.budget.tick_s * 1000)

    def streamed(self) -> tuple[dict[int, dict[int, NowRelease]], list[NowTracker], RunningStock]:
        """Each partition fed a minute at a time and advanced to its end; released every quarter hour."""
        t = self.tracks
        book = RunningStock(
            self.budget,
            period_start_ms=self.start,
            secret=SECRET,
            cells=self.cells,
            window_ticks=self.tick(self.start + QUARTER_MS),
            coarser=(6,),
        )
        trackers = [
            NowTracker(ttl_ms=self.ttl_ms, settle_ms=self.settle_ms, max_changes=MAX_CHANGES)
            for _ in range(2)
        ]
        order = np.argsort(t.ts_ms, kind="stable")
        reports = list(
            zip(t.person[order].tolist(), t.ts_ms[order].tolist(), t.cell[8][order].tolist(), strict=True)
        )
        out: dict[int, dict[int, NowRelease]] = {}
        for end in range(self.start + WINDOW_MS, self.until + 1, WINDOW_MS):
            for partition, tracker in enumerate(trackers):
                tracker.feed([r for r in reports if r[0] % 2 == partition and end - WINDOW_MS <= r[1] < end])
                moves = tracker.advance(end)
                for res in self.budget.resolutions:
                    book.add(res, moves_at(moves, t.cells[8], res))
            if (end - self.start) % QUARTER_MS == 0:
                out[end] = book.release(self.tick(end))
        return out, trackers, book

    def batch(self, end_ms: int, kept: dict[int, Changes]) -> dict[int, NowRelease]:
        stock = {}
        for res in self.budget.resolutions:
            at, persons = stock_at(kept[res], end_ms - 1)
            stock[res] = {
                self.tracks.cells[res][c]: int(n) for c, n in zip(at.tolist(), persons.tolist(), strict=True)
            }
        return release_tick(
            stock,
            tick=self.tick(end_ms),
            period_start_ms=self.start,
            budget=self.budget,
            secret=SECRET,
            cells=self.cells,
            coarser=(6,),
        )


def test_two_partitions_trackers_and_one_running_stock_release_what_the_batch_functions_release() -> None:
    case = _Case()
    t = case.tracks
    track = presence_changes(
        t.person, t.ts_ms, t.cell[8], ttl_ms=case.ttl_ms, until_ms=case.until, settle_ms=case.settle_ms
    )
    bounded = bound_changes(track, MAX_CHANGES).changes
    kept = {res: coarsened(bounded, t.parent_codes(8, res)) for res in case.budget.resolutions}
    streamed, trackers, book = case.streamed()
    assert len(streamed) == 16
    for end, release in streamed.items():
        batch = case.batch(end, kept)
        for res in (8, 7, 6):
            assert np.array_equal(release[res].noisy, batch[res].noisy), (end, res)
    assert sum(tracker.persons_cut for tracker in trackers) > 0  # the bound had work to do
    assert sum(book.stock[8].values()) > 500  # most of the 600 are present
