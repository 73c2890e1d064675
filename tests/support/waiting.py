"""The one way tests wait: poll a probe until it gives something truthy, or fail saying what was awaited.

Tests never assert on how long a wait took; `timeout_s` only bounds a wait that would otherwise hang.
`wait_for` polls from synchronous code, `wait_for_async` from a coroutine (its probe may be a coroutine
function). By default a probe that raises counts as "not yet" (the thing waited for may not exist yet);
`retry_on=()` makes any error fail the test at once.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar, overload

import pytest

T = TypeVar("T")


class WaitFor(Protocol):
    """The type of `wait_for`, for tests that take it as a fixture."""

    def __call__(
        self,
        probe: Callable[[], T | None],
        *,
        timeout_s: float = ...,
        what: str = ...,
        interval_s: float = ...,
        retry_on: tuple[type[BaseException], ...] = ...,
    ) -> T: ...


ANY_ERROR: tuple[type[BaseException], ...] = (Exception,)


class _Deadline:
    def __init__(self, timeout_s: float, what: str) -> None:
        self.timeout_s, self.what = timeout_s, what
        self.at = time.monotonic() + timeout_s
        self.last_error: BaseException | None = None

    def check(self) -> None:
        if time.monotonic() > self.at:
            detail = f" (last error: {self.last_error!r})" if self.last_error else ""
            pytest.fail(f"gave up waiting for {self.what} after {self.timeout_s:g} s{detail}")


def wait_for(
    probe: Callable[[], T | None],
    *,
    timeout_s: float = 30.0,
    what: str = "condition",
    interval_s: float = 0.1,
    retry_on: tuple[type[BaseException], ...] = ANY_ERROR,
) -> T:
    """Call `probe` every `interval_s` until its value is truthy and return that value."""
    deadline = _Deadline(timeout_s, what)
    while True:
        try:
            value = probe()
            if value:
                return value
        except retry_on as exc:
            deadline.last_error = exc
        deadline.check()
        time.sleep(interval_s)


@overload
async def wait_for_async(
    probe: Callable[[], Awaitable[T | None]],
    *,
    timeout_s: float = ...,
    what: str = ...,
    interval_s: float = ...,
    retry_on: tuple[type[BaseException], ...] = ...,
) -> T: ...
@overload
async def wait_for_async(
    probe: Callable[[], T | None],
    *,
    timeout_s: float = ...,
    what: str = ...,
    interval_s: float = ...,
    retry_on: tuple[type[BaseException], ...] = ...,
) -> T: ...
async def wait_for_async(
    probe: Callable[[], T | Awaitable[T | None] | None],
    *,
    timeout_s: float = 30.0,
    what: str = "condition",
    interval_s: float = 0.01,
    retry_on: tuple[type[BaseException], ...] = ANY_ERROR,
) -> T:
    """`wait_for` for coroutines: sleeps with `asyncio.sleep`, so the loop keeps running meanwhile."""
    deadline = _Deadline(timeout_s, what)
    while True:
        try:
            result = probe()
            # a coroutine function's probe gives an awaitable; a plain function's gives the value
            value = await result if inspect.isawaitable(result) else result
            if value:
                return value
        except retry_on as exc:
            deadline.last_error = exc
        deadline.check()
        await asyncio.sleep(interval_s)
