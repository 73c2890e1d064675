"""The aggregate agent must not restore partitions while Faust recovers tables (streams/worker.py)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any, cast

import pytest

from streams.worker import FaustConsumer


def app(*, completed: bool, rebalancing: bool) -> Any:
    event = asyncio.Event()
    if completed:
        event.set()
    return SimpleNamespace(
        tables=SimpleNamespace(recovery=SimpleNamespace(completed=event)), rebalancing=rebalancing
    )


@pytest.mark.parametrize(
    ("completed", "rebalancing", "expected"),
    [
        (False, True, False),  # the first recovery
        (True, False, True),  # between rebalances
        (True, True, False),  # a later rebalance: Faust leaves `completed` set while it recovers again
    ],
)
def test_recovered_only_between_rebalances(completed: bool, rebalancing: bool, expected: bool) -> None:
    consumer = FaustConsumer(cast(Any, app(completed=completed, rebalancing=rebalancing)))
    assert consumer.recovered() is expected
