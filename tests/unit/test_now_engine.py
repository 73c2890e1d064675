"""The now worker's core: clean sim batches of several partitions in, provisional frames out, equal to
what the batch functions release; lateness, idle partitions, the period's end and the anchor."""

from __future__ import annotations

from functools import cache
from typing import Any

import h3
import numpy as np
import pytest

from cityscreen.city import load_city
from cityscreen.clean_batch import CleanBatch, decode_batch, encode_columns
from cityscreen.errors import CityScreenError
from cityscreen.frames import Frame, FramePrivacy, NowFrame, decode_now, encode_now
from cityscreen.now_engine import STAT, NowEngine, check_now_settings, key_cells, released_people
from cityscreen.privacy.bounded_presence import bound_changes, coarsened, presence_changes, stock_at
from cityscreen.privacy.now_layer import city_cells, release_tick
from cityscreen.settings import Settings
from services.city_report import PEAK_DAY, local_ms
from services.now_report import Tracks

MAX_CHANGES = 3
MINUTE_MS = 60_000
PARTITIONS = 3


def settings() -> Settings:
    base = Settings()
    return base.model_copy(update={"now": base.now.model_copy(update={"max_changes_per_day": MAX_CHANGES})})


@cache
def tracks() -> tuple[Tracks, int]:
    start = local_ms(load_city(), PEAK_DAY, 4)  # a period starts at 04:00 local
    return Tracks(load_city(), 400, 11, start, start + 3 * 3_600_000, (8, 7)), start


def batch(person: np.ndarray, ts_ms: np.ndarray, cell: list[int], res: int = 8) -> CleanBatch:
    n = len(person)
    blob = encode_columns(
        "sim",
        res,
        ts_ms=ts_ms,
        persons="".join(f"{p:020x}" for p in person.tolist()),
        cell=np.array(cell, dtype=np.uint64),
        event_ids=[f"e{i}" for i in range(n)],
        cats={"gender": ["f"] * n, "age_band": ["25-34"] * n, "origin": ["local"] * n},
        amount_cny=None,
    )
    return decode_batch(blob)


def minute_batches(t: Tracks, since_ms: int, until_ms: int) -> list[tuple[int, CleanBatch]]:
    """The tracks' reports in [since, until), one batch per partition (person mod PARTITIONS)."""
    order = np.argsort(t.ts_ms, kind="stable")
    person, ts_ms, code = t.person[order], t.ts_ms[order], t.cell[8][order]
    ints = [h3.str_to_int(c) for c in t.cells[8]]
    out = []
    for p in range(PARTITIONS):
        pick = (person % PARTITIONS == p) & (ts_ms >= since_ms) & (ts_ms < until_ms)
        if pick.any():
            out.append((p, batch(person[pick], ts_ms[pick], [ints[c] for c in code[pick].tolist()])))
    return out


def reference(engine: NowEngine, t: Tracks, start: int, tick: int) -> dict[int, np.ndarray]:
    """What the batch functions release at `tick` over the engine's keys."""
    end_ms = start + tick * engine.tick_ms
    track = presence_changes(
        t.person,
        t.ts_ms,
        t.cell[8],
        ttl_ms=engine.settings.window.presence_ttl_s * 1000,
        until_ms=end_ms,
        settle_ms=engine.settings.now.settle_s * 1000,
    )
    bounded = bound_changes(track, MAX_CHANGES).changes
    stock = {}
    for res in (8, 7):
        at, persons = stock_at(coarsened(bounded, t.parent_codes(8, res)), end_ms - 1)
        stock[res] = {t.cells[res][c]: int(n) for c, n in zip(at.tolist(), persons.tolist(), strict=True)}
    released = release_tick(
        stock,
        tick=tick,
        period_start_ms=start,
        budget=engine.budget,
        secret=engine.settings.privacy.dp_seed.encode(),
        cells=engine.cells,
        coarser=(6,),
    )
    return {res: r.noisy for res, r in released.items()}


def noisy(frame: NowFrame, k: int) -> np.ndarray:
    """The frame's values where shown; where not, -1 (compared against the reference's mask)."""
    return np.array([-1 if s[STAT] is None else s[STAT] for s in frame.cells.values()])


def run_engine(t: Tracks, start: int, until_ms: int) -> tuple[NowEngine, list[list[NowFrame]]]:
    engine = NowEngine(settings(), load_city().bbox)
    released = []
    for end in range(start + MINUTE_MS, until_ms + 1, MINUTE_MS):
        wall_s = (end - start) / 1000
        for p, b in minute_batches(t, end - MINUTE_MS, end):
            engine.add(p, b, wall_s)
        if (end - start) % (20 * MINUTE_MS) == 0:
            released.append(engine.step(wall_s, published_ms=end))
    return engine, released


def test_engine_releases_what_the_batch_functions_release_every_key_every_resolution() -> None:
    t, start = tracks()
    engine, released = run_engine(t, start, start + 3 * 3_600_000)
    assert len(released) == 9
    k = engine.settings.privacy.min_persons
    for frames in released:
        assert [f.res for f in frames] == [8, 7, 6]
        tick = (frames[0].tick_ms - start) // engine.tick_ms
        ref = reference(engine, t, start, tick)
        for f in frames:
            expected = np.where(ref[f.res] >= k, ref[f.res], -1)
            assert np.array_equal(noisy(f, k), expected), (tick, f.res)
            assert list(f.cells) == (engine.cells.get(f.res) or sorted(f.cells))  # every key, always
            assert set(f.noise_sd) == set(f.cells) and min(f.noise_sd.values()) > 0
            assert decode_now(encode_now(f)) == f
    assert engine.late_reports == 0
    assert engine.period is not None and sum(engine.period.stock.stock[8].values()) > 300  # most are present


def test_a_replay_publishes_the_same_values() -> None:
    t, start = tracks()
    one = run_engine(t, start, start + 3_600_000)[1]
    two = run_engine(t, start, start + 3_600_000)[1]
    assert [[f.cells for f in fs] for fs in one] == [[f.cells for f in fs] for fs in two]


def test_a_late_report_is_counted_and_left_off_and_an_outside_one_too() -> None:
    t, start = tracks()
    engine = NowEngine(settings(), load_city().bbox)
    cell = h3.str_to_int(t.cells[8][0])
    engine.add(0, batch(np.array([1, 2]), np.array([start + 10_000, start + 60_000]), [cell, cell]), 1.0)
    frames = engine.step(1.0, published_ms=0)
    mark = start + 60_000 - engine.lateness_ms  # the newest report less the lateness
    assert frames and frames[0].tick_ms == start + (mark - start) // engine.tick_ms * engine.tick_ms
    engine.add(0, batch(np.array([3]), np.array([start + 20_000]), [cell]), 1.5)
    assert engine.late_reports == 1
    far = h3.str_to_int(h3.latlng_to_cell(0.0, 0.0, 8))
    engine.add(0, batch(np.array([4]), np.array([start + 61_000]), [far]), 1.6)
    assert engine.outside_reports == 1


def test_an_idle_partition_holds_no_tick_back_and_one_with_records_to_read_does() -> None:
    t, start = tracks()
    engine = NowEngine(settings(), load_city().bbox)
    cell = h3.str_to_int(t.cells[8][0])
    assert engine.watermark_ms(wall_s=0.0) is None  # nothing heard yet
    engine.add(0, batch(np.array([1]), np.array([start + 10_000]), [cell]), wall_s=0.0)
    engine.add(1, batch(np.array([2]), np.array([start + 100_000]), [cell]), wall_s=0.0)
    lag = engine.lateness_ms
    assert engine.watermark_ms(wall_s=1.0) == start + 10_000 - lag  # the slower partition
    assert engine.watermark_ms(wall_s=1.0, behind={2}) is None  # partition 2 has records on their way
    engine.add(1, batch(np.array([2]), np.array([start + 101_000]), [cell]), wall_s=6.0)
    assert engine.watermark_ms(wall_s=6.0) == start + 101_000 - lag  # partition 0 silent for 6 s
    assert engine.watermark_ms(wall_s=6.0, behind={0}) == start + 10_000 - lag  # silent, not read to its end
    assert engine.watermark_ms(wall_s=20.0) == start + 101_000 - lag  # the feed stopped: everything arrived


def test_a_partition_heard_from_after_a_release_cannot_send_moves_into_released_ticks() -> None:
    # a partition whose first records come late (the shell's first reads returned other partitions')
    t, start = tracks()
    engine = NowEngine(settings(), load_city().bbox)
    cell = h3.str_to_int(t.cells[8][0])
    engine.add(0, batch(np.array([1, 1]), np.array([start + 1_000, start + 60_000]), [cell, cell]), 0.0)
    assert engine.step(0.0, published_ms=0)
    people = np.array([5, 5, 5])
    engine.add(1, batch(people, np.array([start + 2_000, start + 3_000, start + 70_000]), [cell] * 3), 0.1)
    assert engine.late_reports == 2  # before the released tick's end: left off, counted
    engine.add(0, batch(np.array([1]), np.array([start + 80_000]), [cell]), 0.2)
    assert engine.step(0.2, published_ms=0)  # no move into a released tick (it would raise)


def test_the_period_ends_and_the_next_starts_from_nobody() -> None:
    t, start = tracks()
    engine = NowEngine(settings(), load_city().bbox)
    day_ms = engine.settings.pseudonym_rotation_s * 1000
    cell = h3.str_to_int(t.cells[8][0])
    people = np.arange(1, 31)
    late_in_day = start + day_ms - 5 * MINUTE_MS
    engine.add(0, batch(people, np.full(30, late_in_day), [cell] * 30), 0.0)
    engine.add(0, batch(people, np.full(30, late_in_day + 1000), [cell] * 30), 0.1)  # settled: 2 reports
    before = engine.step(0.1, published_ms=0)
    assert before[0].budget.period_start_ms == start
    engine.add(0, batch(np.array([99]), np.array([start + day_ms + 30_000]), [cell]), 0.2)  # next day
    after = engine.step(0.2, published_ms=0)
    assert after[0].budget.period_start_ms == start + day_ms
    assert after[0].budget.rho_spent < before[0].budget.rho_spent  # the meter restarts with the day
    assert engine.period is not None and engine.period.stock.stock[8] == {}  # the 30 are gone
    assert before[0].budget.rho_spent <= before[0].budget.rho_per_person_day


def test_the_anchor_shows_the_final_value_plus_the_noisy_change_since() -> None:
    t, start = tracks()
    engine, _ = run_engine(t, start, start + 40 * MINUTE_MS)  # released at 20 and 40 minutes
    assert engine.period is not None
    window = start + 38 * MINUTE_MS  # ends at tick 1170, before the 40th minute's release (tick 1199)
    some = engine.cells[7][:5]
    released = {7: {c: 500 for c in some}}
    assert not engine.anchor(window + MINUTE_MS, 60, released)  # not released here yet
    assert not engine.anchor(start - MINUTE_MS, 60, released)  # before the period
    assert engine.anchor(window, 60, released)
    for p, b in minute_batches(t, start + 40 * MINUTE_MS, start + 41 * MINUTE_MS):
        engine.add(p, b, 2500.0)
    frames = {f.res: f for f in engine.step(2500.0, published_ms=0)}
    anchored = [frames[7].cells[c][STAT] for c in some]
    assert all(v is not None and abs(v - 500) < 6 * frames[7].noise_sd[some[0]] for v in anchored)
    # unanchored they would be near the few people there (the 400 persons spread over the city)
    assert max(frames[7].cells[c][STAT] or 0 for c in engine.cells[7][5:]) < 300
    assert frames[7].noise_sd[some[0]] <= frames[7].noise_sd[engine.cells[7][-1]]  # the change's noise


def test_key_cells_hold_the_box_and_every_parent_of_the_finer_keys() -> None:
    box = load_city().bbox
    keys = key_cells(box, (8, 7))
    assert keys[8] == city_cells(box, 8)
    assert {h3.cell_to_parent(c, 7) for c in keys[8]} <= set(keys[7])
    assert set(city_cells(box, 7)) <= set(keys[7])


def test_settings_the_engine_cannot_serve_are_refused_with_the_fix() -> None:
    base = Settings()
    cases: list[tuple[dict[str, Any], str]] = [
        ({"tick_s": 7}, "CITY_NOW__TICK_S"),
        ({"resolutions": [9]}, "CITY_NOW__RESOLUTIONS"),
        ({"settle_s": 3600, "resolutions": [8]}, "CITY_NOW__SETTLE_S"),
    ]
    for now, needle in cases:
        bad = base.model_copy(update={"now": base.now.model_copy(update=now)})
        if needle == "CITY_NOW__SETTLE_S":
            bad = bad.model_copy(update={"window": bad.window.model_copy(update={"presence_ttl_s": 3600})})
        with pytest.raises(CityScreenError, match=needle):
            check_now_settings(bad)


def test_the_anchor_takes_what_a_final_frame_released_of_people_present() -> None:
    cells: dict[str, dict[str, float | None]] = {"a": {STAT: 12.4, "active.persons": 3.0}}
    cells |= {"b": {STAT: None}, "c": {}}
    frame = Frame(1, 0, 60, 7, 0, FramePrivacy(10, False, 0.0), cells)
    assert released_people(frame) == {"a": 12}
