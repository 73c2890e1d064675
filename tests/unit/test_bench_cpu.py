"""The benchmarks' CPU accounting: per process (children in), per role, ended processes left out."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from services.bench.cpu import by_role, cpu_seconds


def test_a_process_counts_its_children_and_an_ended_one_is_left_out() -> None:
    spin = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass\n"
    child = subprocess.Popen([sys.executable, "-c", spin + "import sys; sys.stdin.read()"],
                             stdin=subprocess.PIPE)  # fmt: skip
    try:
        while cpu_seconds({"child": child.pid}).get("child", 0.0) < 0.3:
            time.sleep(0.01)  # the child spins 0.3 s of CPU, then waits on its input
        mine = cpu_seconds({"me": os.getpid()})["me"]
        apart = cpu_seconds({"me": os.getpid()}, children_apart=True)
        alone = sum(os.times()[:2])  # this process without its children
        assert mine >= alone + 0.3 - 0.05  # the child's CPU is in the parent's figure
        assert apart["me.children"] >= 0.3 and apart["me"] < mine - 0.25  # or apart, when asked
    finally:
        child.communicate(b"")
    assert cpu_seconds({"ended": child.pid}) == {}


def test_cpu_seconds_sum_per_role_and_other_names_keep_their_own() -> None:
    used = {"bench-a-0": 2.0, "bench-b-1": 1.5, "bench-b-1.children": 4.0, "bench-b-2": 0.5, "kafka": 3.0}
    roles = {"bench-a-0": "ingest", "bench-b-1": "aggregate", "bench-b-2": "aggregate"}
    assert by_role(used, roles) == {"ingest": 2.0, "aggregate": 2.0, "aggregate.children": 4.0, "kafka": 3.0}
