"""`cityscreen privacy report --default-city`: the real ingest rules, aggregation and gate, no Kafka."""

from __future__ import annotations

from cityscreen.aggregates import Measure, WindowAggregate
from cityscreen.frames import Frame, FramePrivacy
from cityscreen.offline import OfflineAggregator
from cityscreen.settings import Settings
from services.city_report import Tally, city_report, tally_window


def frame(res: int, cells: dict[str, dict[str, float | None]]) -> Frame:
    return Frame(v=1, window_start_ms=0, window_s=60, res=res, published_ms=0,
                 privacy=FramePrivacy(10, False, 0.0), cells=cells)  # fmt: skip


def test_a_window_is_tallied_from_exact_values_and_what_the_frames_release() -> None:
    pop, women, men = "population.persons", "population.persons|gender=F", "population.persons|gender=M"
    aggregate = WindowAggregate(
        window_start_ms=0, window_s=60, base_res=8, flow_res=6,
        cells={8: {"a": {pop: Measure(30, 30, 1), women: Measure(30, 30, 1), men: Measure(0, 0, 0)},
                   "b": {pop: Measure(4, 4, 1), women: Measure(1, 1, 1), men: Measure(3, 3, 1)}}},
    )  # fmt: skip
    released = frame(8, {"a": {pop: 30, women: 30, men: None}, "b": {pop: None, women: None, men: None}})
    tallies: dict[int, Tally] = {}
    tally_window(aggregate, [released], tallies)
    t = tallies[8]
    assert (t.present, t.present_released) == (34, 30)
    assert (t.parts, t.parts_released) == (3, 1)  # the zero part is not counted either way


def test_a_small_default_city_run_warms_up_and_reports_every_field() -> None:
    doc = city_report(Settings(), minutes=2, persons=3000, aggregator=OfflineAggregator, say=lambda _: None)
    assert doc["windows"] == 2 and doc["persons_simulated"] == 3000
    # after 30 minutes every idle phone has reported: the stock holds (nearly) the whole population
    assert 0.95 * 3000 <= doc["persons_present"] <= 3000
    assert set(doc["released_person_share"]) == {6, 7, 8}
    shares = [*doc["released_person_share"].values(), *doc["released_breakdown_share"].values()]
    assert all(0 <= s <= 1 for s in shares)
    # coarser cells hold more persons, so they are released at least as often
    person = doc["released_person_share"]
    assert person[6] >= person[7] >= person[8]
    # one flow window: the default 15 minutes, cut short by the end of the simulation (and so said)
    assert len(doc["flows_released"]) == 1 and doc["rejected"] == {} and doc["k"] == 10
    windows = doc["layer_windows"]
    assert len(windows["population"]) == 2 and all(
        w["end_ms"] - w["start_ms"] == 60_000 for w in windows["population"]
    )
    [spend] = windows["payments"]
    assert spend["end_ms"] - spend["start_ms"] == 900_000 and spend["partial"] is True
    assert windows["flows"] == windows["transit"] == [spend]
    assert doc["layer_windows_s"] == {
        "population": 60,
        "active": 60,
        "payments": 900,
        "transit": 900,
        "flows": 900,
    }
    families = doc["released_breakdown_share_by_family"][7]
    assert {"population", "payments", "transit", "transit|line", "population|gender"} <= set(families)
