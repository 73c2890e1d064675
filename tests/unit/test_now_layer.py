"""The now layer's budget per person-day and its release at a tick: fixed keys, stable noise, noisy
threshold, sums for coarser resolutions, and differencing ticks."""

from __future__ import annotations

import h3
import numpy as np
import pytest

from cityscreen.city import BBox
from cityscreen.privacy import zcdp
from cityscreen.privacy.now_layer import (
    NowRelease,
    RunningStock,
    anchored,
    city_cells,
    release_tick,
    summed,
)
from cityscreen.privacy.person_day import day_statement, now_budget, presence_sensitivity2
from cityscreen.settings import NowSettings

BOX = BBox(min_lat=22.50, max_lat=22.56, min_lng=114.00, max_lng=114.08)
SECRET = b"test secret of the now layer"
PERIOD = 1_794_859_200_000


def test_the_budget_spends_at_most_the_target_per_person_day_and_almost_all_of_it() -> None:
    budget = now_budget(NowSettings(), period_s=86_400)
    assert budget.epsilon <= 3.0
    assert budget.epsilon > 2.99
    assert budget.sensitivity2 == 2 * presence_sensitivity2(43_200, 8)
    assert zcdp.gaussian_rho(budget.sensitivity2, float(budget.sigma2)) == pytest.approx(budget.rho)


def test_more_changes_a_day_or_a_smaller_budget_mean_more_noise() -> None:
    base = now_budget(NowSettings(), period_s=86_400)
    assert now_budget(NowSettings(max_changes_per_day=16), period_s=86_400).sigma2 > base.sigma2
    assert now_budget(NowSettings(epsilon_per_person_day=1.0), period_s=86_400).sigma2 > base.sigma2


def test_a_tick_that_does_not_divide_the_period_is_refused_with_the_fix() -> None:
    with pytest.raises(ValueError, match="CITY_NOW__TICK_S"):
        now_budget(NowSettings(tick_s=7), period_s=86_400)


def test_the_day_statement_adds_the_final_layers_rho() -> None:
    budget = now_budget(NowSettings(), period_s=86_400)
    both = day_statement(budget, final_rho_per_day=1.0)
    assert both["total_rho"] == pytest.approx(budget.rho + 1.0)
    assert both["total_epsilon"] == pytest.approx(zcdp.epsilon(budget.rho + 1.0, budget.delta))
    assert day_statement(budget, None)["total_epsilon"] == pytest.approx(budget.epsilon)


def _release(
    stock: dict[int, dict[str, int]], tick: int, period: int = PERIOD, box: BBox = BOX
) -> dict[int, NowRelease]:
    budget = now_budget(NowSettings(), period_s=86_400)
    cells = {r: city_cells(box, r) for r in budget.resolutions}
    return release_tick(
        stock, tick=tick, period_start_ms=period, budget=budget, secret=SECRET, cells=cells, coarser=(6,)
    )


def test_every_cell_of_the_box_is_a_key_with_or_without_anyone_in_it() -> None:
    cell = city_cells(BOX, 8)[40]
    empty, full = _release({}, 5), _release({8: {cell: 500}, 7: {h3.cell_to_parent(cell, 7): 500}}, 5)
    for res in (8, 7, 6):
        assert empty[res].cells == full[res].cells
    assert full[8].noisy[40] - empty[8].noisy[40] == 500  # same noise, the stock on top


def test_a_replay_or_a_second_read_gives_the_same_values_and_another_period_other_noise() -> None:
    first, again, other = _release({}, 77), _release({}, 77), _release({}, 77, period=PERIOD + 86_400_000)
    assert np.array_equal(first[8].noisy, again[8].noisy)
    assert not np.array_equal(first[8].noisy, other[8].noisy)


def test_a_value_is_shown_only_when_its_noisy_value_reaches_k() -> None:
    released = _release({}, 3)[8]
    shown = released.shown(10)
    assert np.array_equal(shown, released.noisy >= 10)
    assert 0 < shown.sum() < len(shown)  # noise alone crosses k in some empty cells, not in most


def test_a_coarser_resolution_is_the_sum_of_every_fine_noisy_value() -> None:
    fine = _release({}, 9)[7]
    coarse = summed(fine, 6)
    for i, parent in enumerate(coarse.cells):
        children = [j for j, c in enumerate(fine.cells) if h3.cell_to_parent(c, 6) == parent]
        assert coarse.noisy[i] == fine.noisy[children].sum()
        assert coarse.sd[i] == pytest.approx(fine.sd[0] * len(children) ** 0.5)


def test_a_cell_outside_the_key_set_is_refused() -> None:
    with pytest.raises(ValueError, match="outside the city"):
        _release({8: {h3.latlng_to_cell(40.0, 116.0, 8): 3}}, 1)


def test_differencing_two_ticks_isolates_nobody_the_difference_is_as_noisy_as_a_node() -> None:
    """One person arrives in tick 8 (cover {(3,0)}), the attacker reads ticks 7 and 8
    (cover {(2,0), (1,2), (0,6)}): the difference carries four nodes' noise, whoever arrived."""
    budget = now_budget(NowSettings(), period_s=86_400)
    wide = BBox(min_lat=22.45, max_lat=22.75, min_lng=113.80, max_lng=114.10)  # ~1,400 cells
    before, after = _release({}, 7, box=wide)[8], _release({}, 8, box=wide)[8]
    differences = after.noisy - before.noisy
    assert len(differences) > 1000
    assert np.std(differences) > 0.9 * 2 * float(budget.sigma2) ** 0.5
    assert abs(np.mean(differences)) < 0.1 * np.std(differences)


def test_an_attacker_holding_the_exact_final_value_still_faces_a_nodes_noise_on_the_next_tick() -> None:
    """The final layer publishes exact stocks at a window's end (tick 30 here). Subtracting it from the
    now layer at that tick reveals the cover's noise, and the attacker then reads tick 31 to learn
    who arrived in its two seconds. Tick 31's cover adds one fresh node, so the estimate of the
    arrivals still carries a node's noise: sd sigma, far above k, whatever the attacker knew."""
    budget = now_budget(NowSettings(), period_s=86_400)
    wide = BBox(min_lat=22.45, max_lat=22.75, min_lng=113.80, max_lng=114.10)
    cells = city_cells(wide, 8)
    rng = np.random.default_rng(3)
    at_end = rng.integers(0, 40, len(cells))
    arrived = rng.integers(0, 3, len(cells))
    stock_30 = {8: dict(zip(cells, at_end.tolist(), strict=True))}
    stock_31 = {8: dict(zip(cells, (at_end + arrived).tolist(), strict=True))}
    now_30, now_31 = _release(stock_30, 30, box=wide)[8], _release(stock_31, 31, box=wide)[8]
    known_noise = now_30.noisy - at_end  # what the exact final value gives away
    estimate = now_31.noisy - known_noise - at_end
    error = estimate - arrived
    sigma = float(budget.sigma2) ** 0.5
    assert np.std(error) > 0.9 * sigma
    assert np.mean(np.abs(error) <= 1) < 0.05  # arrivals pinned to within one person in few cells


def test_a_tick_that_does_not_divide_the_pseudonym_period_is_refused_with_the_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pydantic import ValidationError

    from cityscreen.settings import Settings

    monkeypatch.setenv("CITY_NOW__TICK_S", "7")
    with pytest.raises(ValidationError, match="CITY_NOW__TICK_S"):
        Settings()


def _stock_book() -> RunningStock:
    budget = now_budget(NowSettings(), period_s=86_400)
    cells = {r: city_cells(BOX, r) for r in budget.resolutions}
    return RunningStock(
        budget, period_start_ms=PERIOD, secret=SECRET, cells=cells, window_ticks=30, coarser=(6,)
    )


def test_the_running_stock_folds_moves_up_to_the_tick_and_releases_what_release_tick_gives() -> None:
    a, b = city_cells(BOX, 8)[3], city_cells(BOX, 8)[9]
    book = _stock_book()
    book.add(8, [(PERIOD + 100, None, a), (PERIOD + 2_500, None, a), (PERIOD + 4_100, a, b)])
    at_2 = book.release(2)  # ticks 1 and 2: two arrivals in a; the move to b is in tick 3
    assert book.stock[8] == {a: 2}
    assert np.array_equal(at_2[8].noisy, _release({8: {a: 2}}, 2)[8].noisy)
    book.release(3)
    assert book.stock[8] == {a: 1, b: 1}


def test_a_move_for_a_tick_already_released_is_refused() -> None:
    book = _stock_book()
    book.release(5)
    with pytest.raises(ValueError, match="watermark"):
        book.add(8, [(PERIOD + 9_999, None, city_cells(BOX, 8)[0])])
    with pytest.raises(ValueError, match="not after"):
        book.release(5)


def test_anchored_on_the_final_frame_a_value_is_the_final_plus_the_noisy_change_since() -> None:
    a, b = city_cells(BOX, 8)[3], city_cells(BOX, 8)[9]
    at_final = _release({8: {a: 40, b: 5}}, 30)
    now = _release({8: {a: 43, b: 5}}, 37)
    final = {8: {a: 41}}  # the gate released a (the exact count, 41, differs from the kept track's 40)
    shown = anchored(now, at_final, final, tick=37, final_tick=30)[8]
    i, j = now[8].cells.index(a), now[8].cells.index(b)
    assert shown.noisy[i] == 41 + now[8].noisy[i] - at_final[8].noisy[i]
    assert shown.noisy[j] == now[8].noisy[j]  # not released in the final frame: the running value
    # the difference carries the nodes in one cover and not the other: {(4,0),(3,2),(2,6),(1,14)}
    # against {(5,0),(2,8),(0,36)}, seven nodes, where the running value at 37 carries three
    sigma = float(now_budget(NowSettings(), period_s=86_400).sigma2) ** 0.5
    assert shown.sd[i] == pytest.approx(sigma * 7**0.5)
    assert shown.sd[j] == pytest.approx(sigma * 3**0.5)


def test_anchored_at_the_final_tick_itself_is_the_final_value() -> None:
    cell = city_cells(BOX, 8)[3]
    release = _release({8: {cell: 40}}, 30)
    shown = anchored(release, release, {8: {cell: 41}, 7: {}, 6: {}}, tick=30, final_tick=30)
    assert shown[8].noisy[3] == 41 and shown[8].sd[3] == 0


def test_an_attacker_with_the_final_frame_learns_only_a_noisy_change_from_the_anchored_value() -> None:
    """What the anchored value adds to the public final value is the tree's change since the final
    tick: the exact change plus the noise of the nodes in one cover and not the other."""
    wide = BBox(min_lat=22.45, max_lat=22.75, min_lng=113.80, max_lng=114.10)
    cells = city_cells(wide, 8)
    rng = np.random.default_rng(9)
    before, change = rng.integers(10, 60, len(cells)), rng.integers(0, 3, len(cells))
    at_final = _release({8: dict(zip(cells, before.tolist(), strict=True))}, 30, box=wide)
    now = _release({8: dict(zip(cells, (before + change).tolist(), strict=True))}, 31, box=wide)
    final = {8: dict(zip(cells, before.tolist(), strict=True))}
    shown = anchored(now, at_final, final, tick=31, final_tick=30)[8]
    error = shown.noisy - before - change
    sigma = float(now_budget(NowSettings(), period_s=86_400).sigma2) ** 0.5
    assert np.std(error) > 0.9 * sigma  # one fresh node, (0,30): the covers of 30 and 31 share the rest
    assert np.mean(np.abs(error) <= 1) < 0.05


def test_the_running_stock_anchors_later_ticks_on_a_final_frame_once_it_is_out() -> None:
    a = city_cells(BOX, 8)[3]
    book = _stock_book()
    book.add(8, [(PERIOD + 100, None, a), (PERIOD + 61_000, None, a)])  # ticks 1 and 31
    book.release(29)
    book.release(33)  # passes tick 30, the end of the first window: its running values are kept
    with pytest.raises(ValueError, match="no running values kept"):
        book.final(29, {8: {a: 1}})
    book.final(30, {8: {a: 1}})
    i = book.cells[8].index(a)
    shown = book.release(35)[8]
    running = _release({8: {a: 2}}, 35)[8]
    assert shown.noisy[i] == 1 + running.noisy[i] - _release({8: {a: 1}}, 30)[8].noisy[i]
    others = [j for j in range(len(running.cells)) if j != i]
    assert np.array_equal(shown.noisy[others], running.noisy[others])  # no final value: the running one
