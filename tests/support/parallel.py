"""Map a function over independent items on every core, for the CPU-bound gate runs and privacy attacks
that `make test` runs over whole data sets (one process each, so a 2-core box does them in about half the
time)."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from typing import TypeVar

from cityscreen.aggregates import WindowAggregate
from cityscreen.frames import Frame
from cityscreen.privacy import release
from cityscreen.settings import PrivacySettings

T = TypeVar("T")
R = TypeVar("R")


def cores() -> int:
    return len(os.sched_getaffinity(0))


def parallel_map(fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """fn over items in order; in worker processes started afresh (spawn: nothing of a test's threads or
    open sockets is inherited), or in this process when there is one item or one core."""
    workers = min(cores(), len(items))
    if workers <= 1:
        return [fn(item) for item in items]
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        return list(pool.map(fn, items))


def release_all(aggregates: Sequence[WindowAggregate], privacy: PrivacySettings) -> list[Frame]:
    """Every frame the gate releases for these windows, in their order (published at 0)."""
    gate = partial(release, privacy=privacy, published_ms=0)
    return [frame for frames in parallel_map(gate, aggregates) for frame in frames]
