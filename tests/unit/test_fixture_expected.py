"""The committed expected aggregates of the shipped fixture are the plain reference's, recomputed here.

A change to the fixture, the reference or the ingest rules that is not followed by regenerating
fixtures/shenzhen-10min.expected.json.gz (see tests/support/fixture_expected.py) fails this file.
"""

from __future__ import annotations

from collections import Counter

import pytest

from cityscreen.aggregates import WindowAggregate
from cityscreen.city import load_city
from cityscreen.events import RawEvent
from cityscreen.ingest import ACCEPTED, OUT_OF_CITY, IngestResult, Validator, config_from_settings
from services.generator.fixtures import encode_line, read_events
from tests.support.fixture_expected import (
    EXPECTED,
    FIXTURE,
    DefaultSettings,
    _dumps,
    expected_document,
    inside_city,
    load_expected,
    read_expected_text,
)
from tests.support.reference_aggregates import reference_window_aggregates


@pytest.fixture(scope="module")
def raw() -> list[RawEvent]:
    return list(read_events(FIXTURE))


@pytest.fixture(scope="module")
def settings() -> DefaultSettings:
    return DefaultSettings()


def test_committed_file_equals_the_recomputed_reference(settings: DefaultSettings) -> None:
    assert read_expected_text(EXPECTED) == expected_document(FIXTURE, settings), (
        "fixtures/shenzhen-10min.expected.json.gz is stale: regenerate it (tests/support/fixture_expected.py)"
    )


def test_loaded_windows_equal_the_reference_aggregates(
    raw: list[RawEvent], settings: DefaultSettings
) -> None:
    accepted = inside_city(raw, load_city(None).bbox)
    loaded = load_expected(EXPECTED)
    assert loaded == reference_window_aggregates(accepted, settings)
    minutes = sorted({e.ts_ms - e.ts_ms % 60_000 for e in accepted})
    # people present every minute, and on through the end of the 15 minutes of spend, transit and flows
    # the feed's minutes fall in (the stock still holds them when the idle feed closes that window)
    quarters = sorted({m - m % 900_000 for m in minutes})
    base = [w.window_start_ms for w in loaded if w.window_s == 60]
    assert base == list(range(minutes[0], quarters[-1] + 900_000, 60_000))
    assert [w.window_start_ms for w in loaded if w.window_s == 900] == quarters
    assert all(isinstance(w, WindowAggregate) and w.cells for w in loaded)


def test_the_ingest_edge_accepts_every_fixture_event(raw: list[RawEvent], settings: DefaultSettings) -> None:
    validator = Validator(config_from_settings(settings, load_city(None).bbox))
    result = IngestResult()
    now_ms = max(e.ts_ms for e in raw)  # the fixture's own time: the skew rule is the replay's business
    for i, event in enumerate(raw):
        validator.process(result, encode_line(event), topic="t", partition=0, offset=i, now_ms=now_ms)
    # the generator keeps every position inside the city (tests/unit/test_generator_in_city.py)
    assert inside_city(raw, load_city(None).bbox) == raw
    assert result.counts == Counter({ACCEPTED: len(raw)})
    assert f"deadletter.{OUT_OF_CITY}" not in result.counts
    clean_ids = sorted(e.event_id for events in result.clean.values() for e in events)
    assert clean_ids == sorted(e.event_id for e in raw)


def test_layout_indents_to_the_cell_and_sorts_keys() -> None:
    doc = {"b": [{"z": 1, "a": {"y": [1, 2], "x": {}}}], "a": 0}
    assert _dumps(doc, 3) == '{\n "a": 0,\n "b": [\n  {\n   "a": {"x":{},"y":[1,2]},\n   "z": 1\n  }\n ]\n}'
