"""Payments of a slice: which merchant, category, amount and position, drawn when they are emitted.

The plan keeps only when and where (at home or work, in a cluster, at the match); the rest is a draw
of (seed, day, person, payment slot), so it costs nothing until the payment's slice comes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from services.generator.columnar.grid import I64, SHOP_GRID_DEG, snap
from services.generator.columnar.places import AMOUNT_MEDIAN_CNY, CAT, MERCHANTS_PER_CLUSTER, VENUE_MERCHANTS
from services.generator.columnar.plans import AT, LEISURE, VENUE, DayPlan
from services.generator.columnar.rand import Draws

S_PAY = 40_000  # streams of payment slot i: S_PAY + 8 * i + k
CLUSTER_SHARE = 0.7  # of payments near a cluster, made at one of its merchants (else a local shop)
STADIUM_CATS = np.array([CAT["food"], CAT["food"], CAT["entertainment"], CAT["retail"]])
LOCAL = -1  # merchant code of a local shop: LOC-<iy>-<ix>-<cat>


def resolve_payments(world: Any, plan: DayPlan, rows: I64) -> dict[str, np.ndarray[Any, Any]]:
    person = plan.p_person[rows].astype(np.int64)
    slot = plan.p_seq[rows].astype(np.int64)
    style = plan.p_style[rows]
    where = plan.p_where[rows].astype(np.int64)
    draws = Draws(world.seed, plan.day)

    def u(k: int) -> np.ndarray[Any, Any]:
        return draws.uniform(person, S_PAY + 8 * slot + k)

    merchants = world.merchants
    # at a place: a merchant of the cluster nearby, or a shop on the local grid
    at = style == AT
    p_lat, p_lng = world.position(person, np.where(at, where, -1))
    near = np.where(at, merchants.cluster_near(p_lat, p_lng), -1)
    in_cluster = at & (near >= 0) & (u(0) < CLUSTER_SHARE)
    cluster = np.where(at, near, where)
    pick = (u(1) * MERCHANTS_PER_CLUSTER).astype(np.int64)
    merchant = np.where(at & ~in_cluster, LOCAL, np.maximum(cluster, 0) * MERCHANTS_PER_CLUSTER + pick)
    venue = style == VENUE
    merchant = np.where(venue, merchants.venue_base + (u(1) * VENUE_MERCHANTS).astype(np.int64), merchant)
    safe = np.maximum(merchant, 0)
    cat = np.where(merchant == LOCAL, plan.p_cat[rows], merchants.cat[safe] if len(merchants.cat) else 0)
    cat = np.where(venue, STADIUM_CATS[(u(2) * 4).astype(np.int64)], cat)
    sigma = np.select([at, venue], [0.55, 0.5], 0.6)
    mu = np.where(venue, 0.2, 0.0)
    factor = np.where(style == LEISURE, 1.5, 1.0)
    amount = AMOUNT_MEDIAN_CNY[cat] * np.exp(mu + sigma * draws.normal(person, S_PAY + 8 * slot + 3)) * factor
    iy, ix, s_lat, s_lng = snap(p_lat, p_lng, SHOP_GRID_DEG, SHOP_GRID_DEG, world.city.bbox)
    local = merchant == LOCAL
    return {
        "ts_ms": plan.base_ms + plan.p_ts[rows].astype(np.int64),
        "person": person,
        "seq": 1 + 2 * slot + plan.day % 2,
        "merchant": merchant,
        "iy": iy,
        "ix": ix,
        "cat": cat.astype(np.int64),
        "amount": np.maximum(np.round(amount, 2), 0.01),
        "lat": np.where(local, s_lat, merchants.lat[safe] if len(merchants.lat) else 0.0),
        "lng": np.where(local, s_lng, merchants.lng[safe] if len(merchants.lng) else 0.0),
    }
