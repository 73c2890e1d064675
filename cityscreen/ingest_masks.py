"""The batch validator's rule masks over many events at once (cityscreen/ingest_batch.py), each a
sufficient condition for the per-event rule of `cityscreen.ingest.Validator` it stands for."""

from __future__ import annotations

import re

import numpy as np

from cityscreen.demography import ORIGIN_REGIONS
from cityscreen.vocabulary import MAX_ID_CHARS, is_id

_ID_CHARS = re.compile(r"[A-Za-z0-9._:\-]*")


def years(ts_ms: np.ndarray) -> np.ndarray:
    """The UTC calendar year of each time (as `datetime.fromtimestamp(ts / 1000, UTC).year`)."""
    return ts_ms.astype("datetime64[ms]").astype("datetime64[Y]").astype(np.int64) + 1970


def lengths_ok(values: list[str]) -> np.ndarray:
    sizes = np.fromiter(map(len, values), np.int64, len(values))
    return (sizes > 0) & (sizes <= MAX_ID_CHARS)


def ids_ok(values: list[str]) -> np.ndarray:
    """Event and tower ids: the characters of all of them checked in one regex call."""
    ok = lengths_ok(values)
    if _ID_CHARS.fullmatch("".join(values)):
        return ok
    ids: np.ndarray = ok & np.fromiter(map(is_id, values), bool, len(values))
    return ids


def origins_ok(values: list[str]) -> np.ndarray:
    if set(values) <= ORIGIN_REGIONS.keys():
        return np.ones(len(values), bool)
    return np.fromiter((v in ORIGIN_REGIONS for v in values), bool, len(values))
