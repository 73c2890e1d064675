"""Longer windows: layers counted over epoch-aligned spans of several base windows (e.g. 15 minutes).

People present is a stock and stays per base window; spend, transit taps and flows count what happened,
and a minute holds too few payers or riders per cell to clear k. A span window collects the payment and
transit rows of its base windows as they close (and each base window's movement candidates, which the
base close computes because positions move every minute), and closes once its last base window has
closed. Its partial carries `span_s`, so it is merged and gated as a release of its own.

Durability (cityscreen/aggregate/engine.py): the rows stay in their deltas until the span closes (a delta's
newest use is the span's last base window, `AggConfig.newest_use_ms`), and the movement candidates of
each close are written under `m:<closed-through>`, so a restored partition rebuilds its open spans.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np

from cityscreen.aggregate.close import KIND_LAYERS, AggConfig, Carry, tally_events
from cityscreen.aggregate.codec import FORMAT, check_format
from cityscreen.aggregate.flows import Candidates, transit_flows
from cityscreen.aggregate.partial import Partial
from cityscreen.aggregate.rows import KIND_PAYMENT, KIND_TRANSIT, Chunk
from cityscreen.aggregate.stock import Levels
from cityscreen.geo import cell_name

_ENC = msgspec.msgpack.Encoder()
_DEC = msgspec.msgpack.Decoder()


@dataclass
class SpanRows:
    """One open span window: its rows per kind (base windows in order) and its movement candidates."""

    parts: dict[str, list[Chunk]] = field(default_factory=lambda: {KIND_PAYMENT: [], KIND_TRANSIT: []})
    moves: list[Candidates] = field(default_factory=list)


@dataclass
class OpenSpans:
    cfg: AggConfig
    open: dict[tuple[int, int], SpanRows] = field(default_factory=dict)  # (due, span ms) -> rows
    _moves_delta: list[tuple[int, Candidates]] = field(default_factory=list)  # (base window, moves)

    def _rows(self, span_ms: int, w: int) -> SpanRows:
        key = (self.cfg.span_due_ms(span_ms, w), span_ms)
        rows = self.open.get(key)
        if rows is None:
            rows = self.open[key] = SpanRows()
        return rows

    def twin(self) -> OpenSpans:
        """A copy that closes without changing this one: new lists of the same (never changed) chunks."""
        out = OpenSpans(self.cfg)
        for key, rows in self.open.items():
            out.open[key] = SpanRows({k: list(c) for k, c in rows.parts.items()}, list(rows.moves))
        return out

    def pending_from(self, other: OpenSpans) -> None:
        """Take over the movement candidates `other` has not yet written (`take_moves`), first."""
        self._moves_delta = [*other._moves_delta, *self._moves_delta]

    def add_chunk(self, kind: str, w: int, chunk: Chunk) -> None:
        """Rows of base window `w` into every span that counts them."""
        for span_ms in self.cfg.spans_of_kind(kind):
            self._rows(span_ms, w).parts[kind].append(chunk)

    def add_window(self, w: int, parts: dict[str, list[Chunk]], moves: Sequence[Candidates]) -> None:
        """A closed base window's rows and movement candidates (recorded for the next `take_moves`)."""
        for kind in KIND_LAYERS:
            for chunk in parts.get(kind, ()):
                self.add_chunk(kind, w, chunk)
        for m in moves:
            if len(m):
                self.add_moves(w, m)
                self._moves_delta.append((w, m))

    def add_moves(self, w: int, moves: Candidates) -> None:
        if len(moves):
            for span_ms, layers in self.cfg.spans:
                if "flows" in layers:
                    self._rows(span_ms, w).moves.append(moves)

    def close_through(self, through_ms: int, partition: int, carry: Carry) -> list[Partial]:
        """Close every span window whose last base window is at or before `through_ms`, oldest first."""
        out = []
        for key in sorted(k for k in self.open if k[0] <= through_ms):
            due, span_ms = key
            rows = self.open.pop(key)
            layers = dict(self.cfg.spans)[span_ms]
            out.append(close_span(due + self.cfg.window_ms - span_ms, span_ms, layers, partition, rows,
                                  carry, self.cfg))  # fmt: skip
        return out

    # ------------------------------------------------------------ durability
    def take_moves(self) -> tuple[bytes, int] | None:
        """The movement candidates added since the last call and the last base window that needs them."""
        if not self._moves_delta:
            return None
        windows, o, d, p = [], [], [], []
        for w, m in self._moves_delta:
            mo, md, mp = m.arrays()
            windows.append([w, len(mo)])
            o.append(mo)
            d.append(md)
            p.append(mp)
        newest = max(self.cfg.newest_use_ms(KIND_TRANSIT, w) for w, _ in self._moves_delta)
        self._moves_delta = []
        cols = [np.concatenate(c).astype("<u8").tobytes() for c in (o, d, p)]
        return _ENC.encode({"format": FORMAT, "w": windows, "cols": cols}), newest

    def apply_moves(self, raw: bytes, closed_ms: int) -> None:
        """Restore the candidates of one `take_moves` entry, for spans still open after `closed_ms`."""
        data: dict[str, Any] = _DEC.decode(raw)
        check_format(data, "movement delta")
        o, d, p = (np.frombuffer(c, "<u8").astype(np.uint64) for c in data["cols"])
        at = 0
        for w, n in data["w"]:
            cands = Candidates()
            cands.parts.append((o[at : at + n], d[at : at + n], p[at : at + n]))
            at += n
            if self.cfg.newest_use_ms(KIND_TRANSIT, w) > closed_ms:
                self.add_moves(w, cands)


def close_span(
    start_ms: int,
    span_ms: int,
    layers: frozenset[str],
    partition: int,
    rows: SpanRows,
    carry: Carry,
    cfg: AggConfig,
) -> Partial:
    """The partial of one span window: spend and transit taps over all its rows, and flows (transit
    trips paired over the span's taps, movement from its base windows' candidates)."""
    res_all = tuple(cfg.resolutions)
    levels: Levels = {res: {} for res in res_all}
    limit = cfg.max_contributions
    payments = Chunk.concat(rows.parts[KIND_PAYMENT])
    transits = Chunk.concat(rows.parts[KIND_TRANSIT])
    tally_events(
        levels,
        payments if "payments" in layers else payments.take(np.empty(0, np.int64)),
        transits if "transit" in layers else transits.take(np.empty(0, np.int64)),
        res_all,
        limit,
    )
    raw: list[tuple[int, int, str, int]] = []
    if "flows" in layers:
        raw = transit_flows(transits, carry, cfg.flow_res, cfg.trip_ttl_ms, limit)
        raw += [(o, d, "movement", n) for o, d, n in Candidates.join(rows.moves).counts(limit)]
    flows = sorted((cell_name(o), cell_name(d), kind, n) for o, d, kind, n in raw)
    cells = {res: lv for res, lv in levels.items() if lv}
    return Partial(start_ms, partition, cells, flows, 0, span_ms // 1000)
