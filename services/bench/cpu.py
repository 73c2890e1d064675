"""CPU seconds of the processes a benchmark runs (user and system, a worker's gate processes in its
figure): what each stage of the pipeline costs per event, beside the wall-clock rates."""

from __future__ import annotations

from collections.abc import Mapping

import psutil

from cityscreen.settings import Settings


def cpu_seconds(pids: Mapping[str, int], *, children_apart: bool = False) -> dict[str, float]:
    """CPU seconds each live process of `pids` has used so far, its children in (a process that ended
    is left out). `children_apart`: the children's under "<name>.children" instead (a worker's gate
    processes), when it has any."""
    out = {}
    for name, pid in pids.items():
        try:
            proc = psutil.Process(pid)
            own = proc.cpu_times()
            children = [c.cpu_times() for c in proc.children(recursive=True)]
        except psutil.Error:
            continue
        theirs = sum(t.user + t.system for t in children)
        out[name] = own.user + own.system + (0.0 if children_apart else theirs)
        if children_apart and children:
            out[f"{name}.children"] = theirs
    return out


def stack_pids(settings: Settings) -> dict[str, int]:
    """The running local stack's broker(s) and Redis (none when it runs elsewhere)."""
    from services.stack.local import running_stack

    stack = running_stack(settings)
    return {} if stack is None else stack.pids()


def by_role(cpu_s: Mapping[str, float], role_of: Mapping[str, str]) -> dict[str, float]:
    """CPU seconds summed per role (`role_of`: process name -> role; "<name>.children" goes to
    "<role>.children"; other names keep their own)."""
    out: dict[str, float] = {}
    for name, seconds in cpu_s.items():
        parent, dot, rest = name.partition(".")
        role = role_of[parent] + dot + rest if parent in role_of else name
        out[role] = out.get(role, 0.0) + seconds
    return out


def listed(values: Mapping[str, float] | Mapping[str, int], spec: str) -> str:
    """ "name value, ..." for a progress line, each value formatted with `spec`."""
    return ", ".join(f"{name} {v:{spec}}" for name, v in values.items())
