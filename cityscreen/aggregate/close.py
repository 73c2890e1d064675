"""Closing a window: one partition's rows of one window become a `Partial`.

Rules (docs/streams.md):
- people present (`population.persons`): each person whose last known position (latest SIM event at or
  before the window's end, by time then arrival) is within `presence_ttl_ms` counts in its cell, with
  the attributes of that event; active persons (`active.persons`): each person with a SIM event in the
  window, in the cell of the last one. Each person is in one cell, so parents and totals are exact sums
  (cityscreen/aggregate/stock.py);
- payments and transit: every event counts in its own cell; persons are distinct payers / riders;
- flows at `flow_res`: transit pairs a tap-out with the same person's last tap-in (carried across
  windows, dropped after `trip_ttl_ms`); movement pairs a person's consecutive SIM cells. A flow counts
  in the window of its later event; a person counts once per (origin, dest) pair; same-cell pairs are
  not flows.
- with differential privacy on, each person contributes at most `max_contributions` events per metric
  (and flows) per window, the earliest ones, and amounts arrive already clipped (see rows.to_fen).

Every rule is a sort or a grouped sum over the window's columns (rows.Chunk); Python loops run only
over the results: cells, categories and statistics, never over events.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, partial

import numpy as np

from cityscreen.aggregate.flows import Candidates, Carry, movement_candidates, window_flows
from cityscreen.aggregate.partial import Partial
from cityscreen.aggregate.rows import EMPTY, VOCAB, Chunk, Places, rank_in_run, run_starts
from cityscreen.aggregate.stock import Levels, count_active, count_present, presence_since_ms
from cityscreen.aggregates import stat_key
from cityscreen.geo import cell_name
from cityscreen.settings import Settings

__all__ = ["AggConfig", "Carry", "close_chunks", "tally_events"]

ALL_LAYERS = ("population", "active", "payments", "transit", "flows")
# the layers each topic kind's rows feed (besides the stock, which SIM rows always feed)
KIND_LAYERS = {"payment": frozenset({"payments"}), "transit": frozenset({"transit", "flows"})}


@dataclass(frozen=True)
class AggConfig:
    window_ms: int
    grace_ms: int
    base_res: int
    resolutions: tuple[int, ...]  # finest first, base included
    flow_res: int
    trip_ttl_ms: int
    presence_ttl_ms: int
    rotation_ms: int  # the pseudonym period: a person's key changes at its boundaries
    rotation_offset_ms: int  # ... which fall this long after each multiple of rotation_ms
    max_contributions: int | None  # None: unbounded (differential privacy off)
    clip_cny: float | None
    # layers counted in every base window (people present and active always are) ...
    base_layers: frozenset[str] = frozenset(ALL_LAYERS)
    # ... and longer epoch-aligned windows: (length ms, the layers counted over it), shortest first
    spans: tuple[tuple[int, frozenset[str]], ...] = ()
    # a live window's partials are computed this long after its end, before its close (None: never)
    speculate_ms: int | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> AggConfig:
        w, p = settings.window, settings.privacy
        return cls(
            window_ms=w.window_s * 1000,
            grace_ms=w.grace_s * 1000,
            base_res=w.h3_res,
            resolutions=tuple(w.resolutions),
            flow_res=w.flow_res,
            trip_ttl_ms=w.trip_ttl_s * 1000,
            presence_ttl_ms=w.presence_ttl_s * 1000,
            rotation_ms=settings.pseudonym_rotation_s * 1000,
            rotation_offset_ms=settings.pseudonym_rotation_offset_s * 1000,
            max_contributions=p.max_contributions_per_window if p.dp_enabled else None,
            clip_cny=p.max_amount_cny if p.dp_enabled else None,
            base_layers=frozenset(w.spans_s[w.window_s]),
            spans=tuple((s * 1000, frozenset(ls)) for s, ls in w.spans_s.items() if s != w.window_s),
            speculate_ms=settings.speculate_ms,
        )

    @property
    def carry_ttl_ms(self) -> int:
        """How long a position can still matter: for people present or for a movement flow (an open trip
        waits for tap-outs of a flow window that may be a whole span longer than a base window)."""
        return max(self.trip_ttl_ms + self.flows_span_ms - self.window_ms, self.presence_ttl_ms)

    @property
    def flows_span_ms(self) -> int:
        return next((ms for ms, layers in self.spans if "flows" in layers), self.window_ms)

    def span_due_ms(self, span_ms: int, w: int) -> int:
        """The last base window of the span window holding base window `w`: its close closes the span."""
        return w - w % span_ms + span_ms - self.window_ms

    def spans_of_kind(self, kind: str) -> list[int]:
        """Spans whose layers need the rows of a topic kind (transit rows make transit flows too)."""
        return [ms for ms, layers in self.spans if layers & KIND_LAYERS.get(kind, frozenset())]

    def newest_use_ms(self, kind: str, w: int) -> int:
        """The last base window whose close still needs rows of `kind` from base window `w`."""
        return max([w, *(self.span_due_ms(ms, w) for ms in self.spans_of_kind(kind))])

    def close_point_ms(self, w: int) -> int:
        """Where an idle partition closes to, to finish every window that holds base window `w`."""
        return max([w, *(self.span_due_ms(ms, w) for ms, _ in self.spans)])

    def trips_now_ms(self, window_start_ms: int) -> int:
        """Open trips older than this minus the trip TTL can pair with no tap-out still to be counted:
        those of the next base window, or, for longer flow windows, of the open flow window."""
        span = self.flows_span_ms
        if span == self.window_ms:
            return window_start_ms + self.window_ms
        return window_start_ms - window_start_ms % span

    def presence_since_ms(self, window_start_ms: int) -> int:
        """The oldest position counted as present at the end of the window starting then."""
        period = self.period_start_ms(window_start_ms)
        return presence_since_ms(window_start_ms, self.window_ms, self.presence_ttl_ms, period)

    def period_start_ms(self, ts_ms: int) -> int:
        """When the pseudonym period holding ts_ms began."""
        return ts_ms - (ts_ms - self.rotation_offset_ms) % self.rotation_ms

    def positions_from_ms(self, window_start_ms: int) -> int:
        """The oldest position worth keeping after closing that window (presence, movement flows)."""
        end = window_start_ms + self.window_ms
        return max(end - self.carry_ttl_ms, self.period_start_ms(window_start_ms))


# Memoised keys: a window has millions of (event x resolution x key) additions but only a few thousand
# distinct cells and categories, so string building becomes lookups.
@cache
def _pay_keys(metric: str, category: str, origin: str) -> tuple[str, ...]:
    return (
        stat_key("payments", metric),
        stat_key("payments", metric, "category", category),
        stat_key("payments", metric, "origin", origin),
    )


@cache
def _tap_keys(metric: str, mode: str, line: str) -> tuple[str, ...]:
    return (
        stat_key("transit", metric),
        stat_key("transit", metric, "mode", mode),
        stat_key("transit", metric, "line", line),
    )


def close_chunks(
    window_start_ms: int,
    partition: int,
    sims: Chunk,
    payments: Chunk,
    transits: Chunk,
    carry: Carry,
    cfg: AggConfig,
    late_events: int = 0,
    moves_out: list[Candidates] | None = None,
) -> Partial:
    """The partial of one base window from its rows: the layers of `cfg.base_layers`; updates `carry`
    (call windows of a partition in order). When flows have a longer window, this window's movement
    candidates are appended to `moves_out` instead of being counted."""
    res_all = tuple(cfg.resolutions)
    levels: Levels = {res: {} for res in res_all}
    sim_order = np.lexsort((sims.ts, sims.person))  # by person, then time, then arrival
    limit = cfg.max_contributions
    layers = cfg.base_layers
    # flows first: they move each person's last known position to this window's last SIM row
    raw_flows: list[tuple[int, int, str, int]] = []
    if "flows" in layers:
        raw_flows = window_flows(sims, sim_order, transits, carry, cfg.flow_res, cfg.trip_ttl_ms, limit)
    else:
        moves = movement_candidates(sims, sim_order, carry, cfg.flow_res, cfg.trip_ttl_ms)
        if moves_out is not None:
            moves_out.append(moves)
    count_present(levels, carry, cfg.presence_since_ms(window_start_ms), res_all)
    if len(sims):
        count_active(levels, sims, sim_order, res_all)
    tally_events(
        levels,
        payments if "payments" in layers else EMPTY,
        transits if "transit" in layers else EMPTY,
        res_all,
        limit,
    )
    flows = sorted((cell_name(o), cell_name(d), kind, n) for o, d, kind, n in raw_flows)
    carry.prune(cfg.trips_now_ms(window_start_ms), cfg.trip_ttl_ms, cfg.positions_from_ms(window_start_ms))
    cells = {res: lv for res, lv in levels.items() if lv}
    return Partial(window_start_ms, partition, cells, flows, late_events)


def tally_events(
    levels: Levels, payments: Chunk, transits: Chunk, res_all: tuple[int, ...], limit: int | None
) -> None:
    """Spend and transit taps of a window's rows into `levels` (each event in its own cell)."""
    if len(payments):
        pay = payments.take(_bounded(payments, limit))
        places = Places(pay.cell, res_all)
        ones = np.ones(len(pay), np.int64)
        for metric, values in (("count", ones), ("amount_cny", pay.b)):
            _tally(levels, places, pay, values, partial(_pay_keys, metric), (pay.a, pay.c))
    if len(transits):
        for tap, metric in (("in", "tap_in"), ("out", "tap_out")):
            rows = transits.take(np.flatnonzero(transits.a == VOCAB.code(tap)))
            if len(rows):
                rows = rows.take(_bounded(rows, limit))
                ones = np.ones(len(rows), np.int64)
                _tally(
                    levels,
                    Places(rows.cell, res_all),
                    rows,
                    ones,
                    partial(_tap_keys, metric),
                    (rows.b, rows.c),
                )


def _bounded(rows: Chunk, limit: int | None) -> np.ndarray:
    """Row indexes; with a limit, at most `limit` per person, the earliest by (time, arrival)."""
    if limit is None:
        return np.arange(len(rows))
    order = np.lexsort((rows.ts, rows.person))
    return np.sort(order[rank_in_run(run_starts(rows.person[order])) < limit])


def _tally(
    levels: Levels,
    places: Places,
    rows: Chunk,
    values: np.ndarray,
    keys_of: Callable[[str, str], tuple[str, ...]],
    dims: tuple[np.ndarray, np.ndarray],
) -> None:
    """(value, persons, top person's value) per resolution, cell and statistic. `keys_of(x, y)` names
    the statistics of a row with categories x and y of `dims`: the total, then the one of x, then the
    one of y. A person's rows are summed per statistic first, then the persons."""
    a, c = dims
    some_a, some_c = VOCAB.strings[int(a[0])], VOCAB.strings[int(c[0])]
    _, person = np.unique(rows.person, return_inverse=True)
    n_persons = int(person.max()) + 1
    strings = VOCAB.strings
    for res in places.names:
        cell = places.of_base[res][places.row_cell]
        names = places.names[res]
        for j, dim in enumerate((None, a, c)):
            group = cell if dim is None else cell * (int(dim.max()) + 1) + dim
            radix = 1 if dim is None else int(dim.max()) + 1
            gp, inverse = np.unique(group * n_persons + person, return_inverse=True)
            per_person = np.bincount(inverse, weights=values, minlength=len(gp)).astype(np.int64)
            groups = gp // n_persons
            starts = np.flatnonzero(run_starts(groups))
            sums = np.add.reduceat(per_person, starts)
            tops = np.maximum.reduceat(per_person, starts)
            persons = np.diff(np.append(starts, len(gp)))
            lv = levels[res]
            for g, v, n, top in zip(groups[starts].tolist(), sums.tolist(), persons.tolist(), tops.tolist(),
                                    strict=True):  # fmt: skip
                ci, code = divmod(g, radix)
                d = lv.get(names[ci])
                if d is None:
                    d = lv[names[ci]] = {}
                # a statistic's key depends only on its own dimension: any row's codes fill the other
                x = strings[code] if j == 1 else some_a
                y = strings[code] if j == 2 else some_c
                d[keys_of(x, y)[j]] = (v, n, top)
