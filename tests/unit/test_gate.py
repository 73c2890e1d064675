"""Table-driven tests of the release gate in threshold mode: what is released, what is suppressed."""

from __future__ import annotations

import h3
import msgspec
import pytest

from cityscreen.aggregates import FlowAggregate, Measure, WindowAggregate
from cityscreen.frames import Frame, encode_frame
from cityscreen.privacy import release
from cityscreen.settings import PrivacySettings
from tests.support.factories import SIBLINGS, bus_stops, crowd, make_aggregate
from tests.support.gate_modes import THRESHOLD, threshold
from tests.support.privacy_helpers import recovered

A, B, C = SIBLINGS[0], SIBLINGS[1], SIBLINGS[2]
TOTAL, F, M = "population.persons", "population.persons|gender=F", "population.persons|gender=M"
AGE = "population.persons|age_band="
ACTIVE = "active.persons"


def released(agg: WindowAggregate, k: int = 10, **privacy: object) -> dict[int, Frame]:
    frames = release(agg, threshold(min_persons=k, **privacy), published_ms=1)
    return {f.res: f for f in frames}


@pytest.mark.parametrize(
    ("persons", "k", "shown"),
    [
        (9, 10, False),  # one under k: suppressed
        (10, 10, True),  # exactly k: released
        (15, 20, False),  # k is configurable upward
        (20, 20, True),
    ],
)
def test_cell_total_threshold_on_distinct_persons(persons: int, k: int, shown: bool) -> None:
    frame = released(make_aggregate({A: crowd(persons)}), k)[8]
    assert (frame.cells[A][TOTAL] is not None) is shown
    if shown:
        assert frame.cells[A][TOTAL] == persons


def test_suppressed_is_null_not_zero_and_empty_categories_are_suppressed() -> None:
    frame = released(make_aggregate({A: crowd(12, "F")}))[8]
    # the male category had nobody: releasing 0 would reveal everyone is female
    assert M in frame.cells[A]
    assert frame.cells[A][M] is None
    assert frame.cells[A][F] is None  # protects M: F = total - M otherwise
    assert frame.cells[A][TOTAL] == 12
    assert b'"population.persons|gender=M":null' in encode_frame(released(make_aggregate({A: crowd(12)}))[8])


@pytest.mark.parametrize(
    ("women", "men", "expect_f", "expect_m"),
    [
        (30, 25, 30, 25),  # both above k: released
        (11, 4, None, None),  # M under k, F suppressed with it (else total - F = M)
        (4, 11, None, None),
    ],
)
def test_breakdown_complementary_suppression(
    women: int, men: int, expect_f: object, expect_m: object
) -> None:
    frame = released(make_aggregate({A: crowd(women, "F") + crowd(men, "M")}))[8]
    assert frame.cells[A][TOTAL] == women + men
    assert (frame.cells[A][F], frame.cells[A][M]) == (expect_f, expect_m)


def test_suppressed_parts_never_add_up_to_a_small_group() -> None:
    # ages: 30 + 20 + 3 + 4; hiding only 3 and 4 would reveal "7 persons aged 55+"
    people = crowd(30, age="25-34") + crowd(20, age="35-44") + crowd(3, age="55-64") + crowd(4, age="65+")
    cells = released(make_aggregate({A: people}))[8].cells[A]
    hidden = [k for k in cells if k.startswith(AGE) and cells[k] is None]
    shown_sum = sum(v for k, v in cells.items() if k.startswith(AGE) and v is not None)
    assert cells[TOTAL] == 57
    assert 57 - shown_sum >= 10, f"suppressed ages add up to {57 - shown_sum}: {hidden}"


def test_parent_minus_children_reveals_no_child() -> None:
    agg = make_aggregate({A: crowd(40), B: crowd(30), C: crowd(3)})
    frames = released(agg)
    res8, res7 = frames[8].cells, frames[7].cells
    parent = next(iter(res7))
    assert res7[parent][TOTAL] == 73
    assert res8[C][TOTAL] is None
    hidden = [c for c in (A, B, C) if res8[c][TOTAL] is None]
    assert len(hidden) >= 2, "one hidden child would equal parent minus the others"
    assert sum(agg.cells[8][c][TOTAL].persons for c in hidden) >= 10
    assert recovered(list(frames.values())) == {}


def test_active_persons_are_gated_like_any_person_count() -> None:
    """`active.persons` has no breakdown, but its parents are sums of its children: the same threshold
    and complementary suppression apply to it as to people present."""
    agg = make_aggregate({A: crowd(40), B: crowd(30), C: crowd(3)})
    active = {A: 12, B: 25, C: 3}  # persons heard in the window: fewer than those present
    for res, cells in agg.cells.items():
        for cell, stats in cells.items():
            n = sum(v for c, v in active.items() if h3.cell_to_parent(c, res) == cell)
            stats[ACTIVE] = Measure(float(n), n, 1.0)
    frames = released(agg)
    res8 = frames[8].cells
    assert next(iter(frames[7].cells.values()))[ACTIVE] == 40
    assert res8[C][ACTIVE] is None
    hidden = [c for c in (A, B, C) if res8[c][ACTIVE] is None]
    assert len(hidden) >= 2 and sum(active[c] for c in hidden) >= 10
    assert recovered(list(frames.values())) == {}


def test_a_bus_only_stop_keeps_its_transit() -> None:
    """With no metro line present, the metro mode is 0 to anyone who reads the key set and the network
    map. It stays hidden (it is under k), but it needs no complement: the stop's total, its bus mode
    and its line are released (they were all hidden with it, which emptied the transit layer)."""
    frames = released(bus_stops({A: [35]}))
    for frame in frames.values():
        values = next(iter(frame.cells.values()))
        assert values["transit.tap_in|mode=metro"] is None
        shown = ("transit.tap_in", "transit.tap_in|mode=bus", "transit.tap_in|line=bus-1")
        assert [values[key] for key in shown] == [35.0, 35.0, 35.0]
    assert recovered(list(frames.values())) == {}


def test_dominance_rule_suppresses_amount_but_not_count() -> None:
    payments = [(A, p, "food", 10.0) for p in range(12)] + [(A, 99, "food", 5000.0)]
    cells = released(make_aggregate({A: crowd(20)}, payments=payments))[8].cells[A]
    assert cells["payments.count"] == 13
    assert cells["payments.amount_cny"] is None  # one payer holds 5000 of 5120


def test_dominance_share_is_configurable() -> None:
    payments = [(A, p, "food", 10.0) for p in range(12)] + [(A, 99, "food", 100.0)]
    agg = make_aggregate({A: crowd(20)}, payments=payments)
    assert released(agg, dominance_share=0.5)[8].cells[A]["payments.amount_cny"] == 220.0
    assert released(agg, dominance_share=0.3)[8].cells[A]["payments.amount_cny"] is None


@pytest.mark.parametrize(("persons", "expect"), [(9, None), (10, 10.0), (250, 250.0)])
def test_flows_threshold_per_pair(persons: int, expect: float | None) -> None:
    agg = make_aggregate({A: crowd(30)})
    agg.flows = [FlowAggregate("86411c167ffffff", "86411c16fffffff", "transit", persons)]
    frame = released(agg)[8]
    assert frame.flows[0].persons == expect


def test_one_frame_per_resolution_with_the_privacy_in_force() -> None:
    frames = release(make_aggregate({A: crowd(30)}), threshold(min_persons=12), published_ms=5)
    assert [f.res for f in frames] == [8, 7, 6]
    assert all(f.privacy.min_persons == 12 and not f.privacy.dp_enabled for f in frames)
    assert all(f.privacy.mechanism == "threshold" and f.fused == {} for f in frames)


@pytest.mark.parametrize("privacy", [THRESHOLD, PrivacySettings()], ids=["threshold", "default"])
def test_frames_carry_only_cells_statistics_and_numbers(privacy: PrivacySettings) -> None:
    """No identifier can leave: every string in a frame is an H3 cell, a statistic key or a label."""
    import h3

    agg = make_aggregate({A: crowd(30), B: crowd(12, "M")}, payments=[(A, p, "food", 9.0) for p in range(11)])
    agg.flows = [FlowAggregate(h3.cell_to_parent(A, 6), h3.cell_to_parent(B, 6), "movement", 11)]
    allowed_labels = {"transit", "movement", "threshold", "laplace", "discrete_gaussian"}
    allowed_labels |= {"laplace+threshold", "discrete_gaussian+threshold"}  # stock noise
    allowed_labels |= {"population", "active", "payments", "flows"}  # spans: the window of each layer
    for frame in release(agg, privacy, published_ms=1):
        doc = msgspec.json.decode(encode_frame(frame))
        strings: list[str] = []

        def walk(node: object, strings: list[str] = strings) -> None:
            if isinstance(node, dict):
                for key, value in node.items():
                    strings.append(key)
                    walk(value)
            elif isinstance(node, list):
                for item in node:
                    walk(item)
            elif isinstance(node, str):
                strings.append(node)

        walk(doc)
        for s in strings:
            assert (
                h3.is_valid_cell(s)
                or s in allowed_labels
                or s.split("|")[0].count(".") == 1
                or s in Frame.__struct_fields__
                or s
                in {"min_persons", "dp_enabled", "epsilon", "mechanism", "origin", "dest", "kind", "persons"}
            ), f"unexpected string in a frame: {s!r}"
