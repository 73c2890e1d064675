"""Child process lifetime: a child started by a CityScreen process ends when that process dies."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal

_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(parent_pid: int) -> None:
    """Run in the child: the kernel sends it SIGTERM when its parent dies, even by SIGKILL, so nothing is
    orphaned. Exits at once if the parent died before this ran."""
    with contextlib.suppress(OSError, AttributeError):  # not Linux: best effort
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent_pid:
        os._exit(1)
