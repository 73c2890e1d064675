"""The benchmarks' pure arithmetic: rates, ratios against the targets, percentiles, lag flatness, JSON.

Nothing here touches Kafka or Redis, so every rule the benchmark prints is unit-tested.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

# Targets of issue 4 on the 2-core machine with the broker on the same box.
TARGET_OURS_EPS = 200_000.0
TARGET_OURS_PER_PEER = 20.0
TARGET_OURS_PER_LIMIT = 0.5
# Targets of issue 17: raw JSON to released frame, and the ingest edge alone.
TARGET_E2E_EPS = 200_000.0
TARGET_INGEST_EPS = 250_000.0


@dataclass(frozen=True)
class Check:
    name: str
    value: float
    target: float

    @property
    def passed(self) -> bool:
        return self.value >= self.target

    def line(self) -> str:
        verdict = "PASS" if self.passed else "MISS"
        return f"{self.name:<14} {_fmt(self.value):>12}  target >= {_fmt(self.target):<10} {verdict}"


def _fmt(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:.2f}"


def rate_eps(events: int, seconds: float) -> float:
    """Events per second; 0 when nothing was timed (an aborted phase), never a division by zero."""
    return events / seconds if seconds > 0 else 0.0


def ratio(a: float, b: float) -> float:
    return a / b if b > 0 else math.inf if a > 0 else 0.0


def checks(limit_eps: float, peer_eps: float, ours_eps: float) -> list[Check]:
    """The three targets, in the order the benchmark prints them."""
    return [
        Check("ours_eps", ours_eps, TARGET_OURS_EPS),
        Check("ours/peer", ratio(ours_eps, peer_eps), TARGET_OURS_PER_PEER),
        Check("ours/limit", ratio(ours_eps, limit_eps), TARGET_OURS_PER_LIMIT),
    ]


def batched_check(limit_batched_eps: float, ours_eps: float) -> Check:
    """The stricter reading of the limit: the same consumer on the batched records ours reads."""
    return Check("ours/limit_b", ratio(ours_eps, limit_batched_eps), TARGET_OURS_PER_LIMIT)


def pipeline_result(
    limit_eps: float, peer_eps: float, ours_eps: float, *, limit_batched_eps: float, **extra: object
) -> dict[str, object]:
    """The JSON document: exactly limit_eps, peer_eps, ours_eps at the top, then ratios, targets, extras."""
    cs = checks(limit_eps, peer_eps, ours_eps)
    strict = batched_check(limit_batched_eps, ours_eps)
    doc: dict[str, object] = {
        "limit_eps": round(limit_eps, 1),
        "peer_eps": round(peer_eps, 1),
        "ours_eps": round(ours_eps, 1),
        "limit_batched_eps": round(limit_batched_eps, 1),
        "ratios": {
            "ours_per_peer": _json_num(cs[1].value),
            "ours_per_limit": _json_num(cs[2].value),
            "ours_per_limit_batched": _json_num(strict.value),
        },
        "targets": {
            "ours_eps": TARGET_OURS_EPS,
            "ours_per_peer": TARGET_OURS_PER_PEER,
            "ours_per_limit": TARGET_OURS_PER_LIMIT,
        },
        "passed": {c.name: c.passed for c in cs},
        "passed_batched_limit": strict.passed,
    }
    doc.update(extra)
    return doc


def end_to_end_result(doc: dict[str, object], e2e_eps: float, ingest_eps: float) -> dict[str, object]:
    """`doc` (a `pipeline_result`) with e2e_eps and ingest_eps first, their ratios against the limit and
    the peer, their targets and verdicts."""
    limit_eps, peer_eps = float(doc["limit_eps"]), float(doc["peer_eps"])  # type: ignore[arg-type]
    out: dict[str, object] = {"e2e_eps": round(e2e_eps, 1), "ingest_eps": round(ingest_eps, 1), **doc}
    ratios = dict(doc["ratios"])  # type: ignore[call-overload]
    for name, eps in (("e2e", e2e_eps), ("ingest", ingest_eps)):
        ratios[f"{name}_per_limit"] = _json_num(ratio(eps, limit_eps))
        ratios[f"{name}_per_peer"] = _json_num(ratio(eps, peer_eps))
    out["ratios"] = ratios
    cs = end_to_end_checks(e2e_eps, ingest_eps)
    out["targets"] = {**doc["targets"], **{c.name: c.target for c in cs}}  # type: ignore[dict-item]
    out["passed"] = {**doc["passed"], **{c.name: c.passed for c in cs}}  # type: ignore[dict-item]
    return out


def end_to_end_checks(e2e_eps: float, ingest_eps: float) -> list[Check]:
    return [Check("e2e_eps", e2e_eps, TARGET_E2E_EPS), Check("ingest_eps", ingest_eps, TARGET_INGEST_EPS)]


def end_to_end_lines(e2e_eps: float, ingest_eps: float, limit_eps: float, peer_eps: float) -> list[str]:
    lines = [
        f"e2e_eps        {e2e_eps:>12,.0f}  (raw JSON -> ingest -> aggregate -> last frame published)",
        f"ingest_eps     {ingest_eps:>12,.0f}  (the ingest edge alone, raw topics -> clean topics)",
        f"e2e/limit {ratio(e2e_eps, limit_eps):.2f}, e2e/peer {ratio(e2e_eps, peer_eps):.2f}, "
        f"ingest/limit {ratio(ingest_eps, limit_eps):.2f}, ingest/peer {ratio(ingest_eps, peer_eps):.2f}",
    ]
    return lines + [c.line() for c in end_to_end_checks(e2e_eps, ingest_eps)]


def _json_num(x: float) -> float | None:
    return round(x, 3) if math.isfinite(x) else None


def summary_lines(limit_eps: float, peer_eps: float, ours_eps: float, limit_batched_eps: float) -> list[str]:
    lines = [
        f"limit_eps      {limit_eps:>12,.0f}  (plain aiokafka consumer, decode only, one event per record)",
        f"limit_b        {limit_batched_eps:>12,.0f}  (the same on the batched records ours reads)",
        f"peer_eps       {peer_eps:>12,.0f}  (textbook Faust agent, per-event table update)",
        f"ours_eps       {ours_eps:>12,.0f}  (aggregate worker, until the last frame is published)",
    ]
    cs = [*checks(limit_eps, peer_eps, ours_eps), batched_check(limit_batched_eps, ours_eps)]
    return lines + [c.line() for c in cs]


# ---------------------------------------------------------------- live mode
def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100) by linear interpolation between closest ranks; None when empty."""
    if not values:
        return None
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def event_delays_ms(first_ts_ms: int, end_ts_ms: int, published_ms: int, samples: int) -> list[float]:
    """Delays (published_ms - ts_ms) of a window's events when they are spread evenly over
    [first_ts_ms, end_ts_ms), as the fixed-rate generator sends them: one value per 1/samples of it."""
    step = (end_ts_ms - first_ts_ms) / samples if samples > 0 else 0
    return [published_ms - (first_ts_ms + (i + 0.5) * step) for i in range(samples)]


def slope_per_s(samples: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of (t_s, value) samples, in value units per second (0 for < 2 samples)."""
    n = len(samples)
    if n < 2:
        return 0.0
    mt = sum(t for t, _ in samples) / n
    mv = sum(v for _, v in samples) / n
    var = sum((t - mt) ** 2 for t, _ in samples)
    if var == 0:
        return 0.0
    return sum((t - mt) * (v - mv) for t, v in samples) / var


def second_half(samples: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The samples taken in the second half of the sampled time span."""
    if not samples:
        return []
    mid = (samples[0][0] + samples[-1][0]) / 2
    return [x for x in samples if x[0] >= mid]


def lag_is_flat(
    lag: Sequence[tuple[float, float]], written: Sequence[tuple[float, float]], max_share: float = 0.05
) -> bool:
    """Lag is flat when, over the second half of the run, it grows by less than `max_share` of the rate
    at which records are written (both in records/s, from (t_s, lag) and (t_s, end offsets) samples):
    a consumer that keeps up has a bounded backlog, one that falls behind by 5% or more is not flat."""
    lag_half, written_half = second_half(lag), second_half(written)
    if len(lag_half) < 2 or len(written_half) < 2:
        return False
    input_rate = slope_per_s(written_half)
    return input_rate > 0 and slope_per_s(lag_half) < max_share * input_rate
