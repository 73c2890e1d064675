"""Released frames: the only shape in which statistics leave the release gate.

A frame covers one window at one H3 resolution. In `cells`, a stat key maps to a number (released)
or to `null` (suppressed: the value exists but is under the threshold or protects one that is). A
cell or a key that is absent had no data. Frames carry counts only, never identifiers.
"""

from __future__ import annotations

import msgspec

FRAME_VERSION = 1


class ReleasedFlow(msgspec.Struct, frozen=True):
    origin: str
    dest: str
    kind: str
    persons: float | None  # None = suppressed


class FramePrivacy(msgspec.Struct, frozen=True):
    """The privacy in force for this frame (the full manifest is served by the gateway)."""

    min_persons: int
    dp_enabled: bool
    epsilon: float  # spent by this window per person; 0 when differential privacy is off
    mechanism: str = "threshold"


class Frame(msgspec.Struct):
    v: int
    window_start_ms: int
    window_s: int
    res: int
    published_ms: int
    privacy: FramePrivacy
    cells: dict[str, dict[str, float | None]]
    flows: list[ReleasedFlow] = []
    # derived only from released values of this and earlier frames (e.g. spend per person present)
    fused: dict[str, dict[str, float]] = {}
    # layer -> [start_ms, end_ms] of the window its values cover: people present per base window; spend,
    # transit and flows may cover a longer window (the latest one ended by this frame's end)
    spans: dict[str, list[int]] = {}

    @property
    def window_end_ms(self) -> int:
        return self.window_start_ms + self.window_s * 1000


def with_span(frame: Frame, span: Frame) -> Frame:
    """`frame` with the layers of a longer window's released frame added, each labelled with its window.
    Both were gated on their own; showing released values together adds no equation the gate did not
    audit (docs/privacy.md, "Windows of different lengths")."""
    cells = {cell: dict(stats) for cell, stats in frame.cells.items()}
    for cell, stats in span.cells.items():
        cells.setdefault(cell, {}).update(stats)
    flows = span.flows if "flows" in span.spans else frame.flows
    return msgspec.structs.replace(frame, cells=cells, flows=flows, spans={**frame.spans, **span.spans})


class DayBudget(msgspec.Struct, frozen=True):
    """The now layer's privacy budget per person-day (pseudonym period) and what its releases so far
    have spent of it: the budget meter's reading."""

    period_start_ms: int
    epsilon_per_person_day: float  # the day's cap, at `delta`
    delta: float
    rho_per_person_day: float
    rho_spent: float  # the loss of every tick released so far today (zCDP)
    epsilon_spent: float  # the same as (epsilon, delta)


class NowFrame(msgspec.Struct):
    """A provisional ("early") frame of the now layer: people present in every cell of the city at one
    resolution at the end of one tick, from the continual-release trees (cityscreen/privacy/now_layer.py).
    Every cell of the city is a key; `null` is a noisy value under the threshold. The window's final
    frame (`Frame`, pane "final") replaces it on the screen when that window closes."""

    v: int
    res: int
    window_start_ms: int  # the base window the tick falls in (still open when this is published)
    window_s: int
    tick_ms: int  # event time the values hold: the end of the tick
    published_ms: int
    privacy: FramePrivacy
    cells: dict[str, dict[str, float | None]]  # {cell: {"population.persons": value or None}}
    noise_sd: dict[str, float]  # each cell's noise standard deviation (a 90% interval is 1.645 of it)
    budget: DayBudget
    pane: str = "early"


_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(Frame)
_NOW_DECODER = msgspec.json.Decoder(NowFrame)


def encode_frame(frame: Frame) -> bytes:
    return _ENCODER.encode(frame)


def decode_frame(data: bytes) -> Frame:
    return _DECODER.decode(data)


def encode_now(frame: NowFrame) -> bytes:
    return _ENCODER.encode(frame)


def decode_now(data: bytes) -> NowFrame:
    return _NOW_DECODER.decode(data)
