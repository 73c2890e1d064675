"""CPU seconds of the processes a benchmark runs (user and system, a worker's gate processes in its
figure): what each stage of the pipeline costs per event, beside the wall-clock rates."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

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


def cpu_doc(
    cpu_s: Mapping[str, float], events: int, phase: str, say: Callable[[str], None]
) -> dict[str, Any]:
    """A phase's `cpu_s` and `events_per_cpu_s` for its JSON, said on one progress line."""
    per_cpu_s = {name: round(events / v) for name, v in cpu_s.items() if v > 0}
    say(f"[{phase}] CPU s from spawn: {_listed(cpu_s, '.1f')}; events per CPU s: {_listed(per_cpu_s, ',')}")
    return {"cpu_s": {name: round(v, 3) for name, v in cpu_s.items()}, "events_per_cpu_s": per_cpu_s}


def _listed(values: Mapping[str, float] | Mapping[str, int], spec: str) -> str:
    return ", ".join(f"{name} {v:{spec}}" for name, v in values.items())
