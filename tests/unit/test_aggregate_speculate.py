"""Speculative partials: computed a few seconds after a live window's end, on a twin of the partition's
state, they are byte for byte what the close sends when no event of the window arrives in between, and
computing them changes nothing the close sends."""

from __future__ import annotations

import dataclasses
import operator

import msgspec
import pytest

from cityscreen.aggregate.close import AggConfig
from cityscreen.aggregate.partial import Partial
from cityscreen.aggregate.partition import PartitionState
from cityscreen.aggregate.rows import window_of
from cityscreen.clean_batch import kind_of
from cityscreen.events import CleanEvent
from cityscreen.settings import Settings
from tests.support.streams_support import ONE_WINDOW, START_MS, batch_of, make_raw_events, to_clean

MINUTES = 17  # past a quarter hour: the default settings' 15-minute windows close with a base window
SETTINGS = {"one window": Settings(window=ONE_WINDOW), "quarter hours": Settings()}


def _events(settings: Settings) -> list[CleanEvent]:
    return [to_clean(r, settings) for r in make_raw_events(persons=30, minutes=MINUTES, late=0)]


def _packed(partials: list[Partial]) -> list[bytes]:
    return [msgspec.msgpack.encode(p) for p in partials]


class Run:
    """One partition fed event by event (one record each), closing and speculating after every one,
    with the worker's clock at the partition's newest event (a live feed)."""

    def __init__(self, cfg: AggConfig) -> None:
        self.state = PartitionState(0, cfg)
        self.closes: list[tuple[int, list[bytes]]] = []  # (closed through, partials)
        self.speculated: dict[int, list[bytes]] = {}  # through -> partials
        self.touched: set[int] = set()  # speculations an event of their windows arrived after
        self.offsets: dict[str, int] = {}
        self.objects: dict[int, list[Partial]] = {}  # through -> the speculation's partials
        self.adopted = 0  # closes that took the speculation's state and partials (no close computed)
        self.written: list[tuple[bytes, tuple[bytes, int] | None, bytes]] = []  # what commits wrote

    def kept(self) -> tuple[object, ...]:
        """What the state carries into the windows still to close."""
        st = self.state
        spans = {
            key: ([len(c) for c in rows.parts.values()], len(rows.moves))
            for key, rows in st.spans.open.items()
        }
        return (
            st.carry.positions.as_dict(),
            st.carry.open_trip.as_dict(),
            spans,
            sorted(st.windows),
            st.closed_through_ms,
        )

    def add(self, event: CleanEvent, wall_ms: float | None = None) -> None:
        st, kind = self.state, kind_of(event)
        offset = self.offsets[kind] = self.offsets.get(kind, -1) + 1
        assert not len(st.add_record(kind, offset, batch_of(kind, [event])))  # none late
        w = window_of(event.ts_ms, st.cfg.window_ms)
        self.touched |= {t for t in self.speculated if w <= t}
        before = st.closed_through_ms
        closed = st.close_due()
        if st.closed_through_ms != before:
            assert st.closed_through_ms is not None
            self.closes.append((st.closed_through_ms, _packed(closed)))
            ahead = self.objects.get(st.closed_through_ms, [])
            self.adopted += (
                bool(closed) and len(closed) == len(ahead) and all(map(operator.is_, closed, ahead))
            )
            if len(self.closes) % 2 == 0:  # the worker commits a close later, sometimes after the next
                self.written.append((st.take_carry_delta(), st.spans.take_moves(), st.snapshot()))
        taken = st.speculate(max(st.watermark_ms.values()) if wall_ms is None else wall_ms)
        if taken is not None:
            assert taken[0] not in self.speculated, "a window is speculated once"
            self.speculated[taken[0]] = _packed(taken[1])
            self.objects[taken[0]] = taken[1]


def _run(settings: Settings, cfg: AggConfig | None = None, wall_ms: float | None = None) -> Run:
    run = Run(cfg or AggConfig.from_settings(settings))
    for event in _events(settings):
        run.add(event, wall_ms)
    return run


@pytest.mark.parametrize("name", list(SETTINGS))
def test_speculative_partials_are_the_closes_own_when_no_event_of_the_window_came_after(name: str) -> None:
    settings = SETTINGS[name]
    run = _run(settings)
    assert len(run.closes) >= MINUTES - 2
    same = changed = 0
    for through, partials in run.closes:
        if through not in run.speculated:
            continue
        if through in run.touched:
            changed += 1
            assert run.speculated[through] != partials  # the later event is in the close only
        else:
            same += 1
            assert run.speculated[through] == partials
    assert same >= MINUTES - 3  # all but the last windows' closes were speculated
    # ... and those closes took the twin's state instead of computing (seen by its partials' identity)
    assert run.adopted == sum(1 for t, ps in run.closes if ps and run.speculated.get(t) == ps)
    assert changed == len(run.touched & {t for t, _ in run.closes})  # (the test below makes one)
    if name == "quarter hours":  # the 15-minute windows' partials were speculated with their last minute
        spans = [p for t, ps in run.closes for p in ps if t in run.speculated and t not in run.touched]
        assert any(msgspec.msgpack.decode(p, type=Partial).span_s == 900 for p in spans)


@pytest.mark.parametrize("name", list(SETTINGS))
def test_speculating_changes_nothing_the_closes_send(name: str) -> None:
    settings = SETTINGS[name]
    off = dataclasses.replace(AggConfig.from_settings(settings), speculate_ms=None)
    without = _run(settings, off)
    assert without.speculated == {}
    speculating = _run(settings)
    assert speculating.closes == without.closes
    assert speculating.written == without.written  # the deltas, movement candidates and snapshots
    assert speculating.kept() == without.kept()


def test_an_in_grace_event_after_the_speculation_is_in_the_close_and_not_in_the_speculation() -> None:
    settings = SETTINGS["one window"]
    events = _events(settings)
    cfg = AggConfig.from_settings(settings)
    assert cfg.speculate_ms == settings.window.speculate_after_s * 1000 == 10_000
    run = Run(cfg)
    first = START_MS  # the first window
    for event in events:
        run.add(event)
        if first in run.speculated:
            break
    assert first not in run.touched and (run.state.closed_through_ms or 0) < first  # not closed yet
    payment = next(e for e in events if type(e).__name__ == "PaymentEvent")
    run.add(msgspec.structs.replace(payment, event_id="in-grace", ts_ms=first + 59_000))
    assert first in run.touched
    for event in events:
        if event.ts_ms > run.state.watermark_ms.get(kind_of(event), 0):
            run.add(event)
    close = dict(run.closes)[first]
    assert close != run.speculated[first]
    assert len(close) == len(run.speculated[first])  # the same window, one more payment in the close


def test_no_speculation_when_the_feed_is_not_live_or_the_setting_is_off() -> None:
    # replayed a day later: the close comes within seconds of processing anyway
    assert _run(SETTINGS["one window"], wall_ms=START_MS + 86_400_000).speculated == {}
    chained = Settings(window=ONE_WINDOW, privacy={"across_time": True})
    assert chained.speculate_ms is None and AggConfig.from_settings(chained).speculate_ms is None
    for window in ({"speculate_after_s": 0}, {"speculate_after_s": 30}, {"grace_s": 5}):
        assert Settings(window={**ONE_WINDOW, **window}).speculate_ms is None
    assert Settings(window={**ONE_WINDOW, "speculate_after_s": 29}).speculate_ms == 29_000
