"""Idle closing counts only time spent waiting for records, not time the worker spent computing."""

from __future__ import annotations

import pytest

from cityscreen.aggregate.close import AggConfig
from cityscreen.aggregate.engine import DictLog, Engine
from cityscreen.events import SimEvent
from cityscreen.settings import Settings
from tests.support.factories import clean_event

W0 = 1_767_225_600_000
CFG = AggConfig.from_settings(Settings())  # 60 s windows, 30 s grace


def make_sim(ts_ms: int, **overrides: object) -> SimEvent:
    return clean_event("sim", event_id=f"e{ts_ms}", ts_ms=ts_ms, tower_id="T1", **overrides)


@pytest.mark.parametrize(("busy_s", "quiet"), [(0.0, True), (2.0, False)])
def test_busy_time_does_not_count_as_idle(busy_s: float, quiet: bool) -> None:
    now = [0.0]
    engine = Engine(CFG, DictLog(), clock=lambda: now[0])
    for kind in ("sim", "payment", "transit"):
        engine.apply_events(0, kind, 0, [make_sim(W0)] if kind == "sim" else [])
    engine.persist()
    now[0] = 6.0  # 6 s later; of which busy_s the worker spent closing windows, not waiting
    engine.pause_idle(busy_s)
    assert (engine.quiet_kinds(0, 5.0) == frozenset({"sim", "payment", "transit"})) is quiet
    closed = engine.close_due(idle_s=5.0)
    assert any(c.partials for c in closed) is quiet  # idle: the open window closes; busy: it stays open
