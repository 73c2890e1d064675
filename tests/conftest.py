"""Fixtures every test level shares. The helpers themselves live in `tests.support`; these fixtures only
hand them to tests that prefer a fixture argument to an import.

- `free_port` (function): `free_port()` gives an unused loopback port, e.g. for the gateway. It is the
  product's own `services.stack.ports.free_port`, so tests and `cityscreen up` pick ports the same way.
- `wait_for` (function): `wait_for(probe, timeout_s=30, what="...")` polls until `probe()` is truthy and
  returns its value; it fails with `what` (never asserts on durations). See `tests.support.waiting`.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from services.stack import ports
from tests.support import waiting


@pytest.fixture
def free_port() -> Callable[[], int]:
    return ports.free_port


@pytest.fixture
def wait_for() -> waiting.WaitFor:
    return waiting.wait_for
