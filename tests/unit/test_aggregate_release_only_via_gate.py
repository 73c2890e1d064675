"""Nothing reaches Redis frame keys, the notify channel, the manifest or the frames topic except through
the release sink (streams/release.py), which accepts only a WindowAggregate and applies the gate. The
Redis layout is written by adapters/frame_store.py, whose `put_released` only the sink calls."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from streams.release import ReleaseSink

ROOT = Path(__file__).resolve().parents[2]
SINK = ROOT / "streams" / "release.py"
STORE = ROOT / "adapters" / "frame_store.py"
# names whose use means "writing a released frame": the Redis layout and the frames topic
GUARDED = {
    "latest_frame_key",
    "frame_key",
    "frame_index_key",
    "NOTIFY_CHANNEL",
    "MANIFEST_KEY",
    "FRAMES_TOPIC",
    "now_key",
    "NOW_NOTIFY_CHANNEL",
}
WRITES = {"set", "setex", "zadd", "publish", "send", "send_soon", "produce", "mset", "hset", "rpush", "lpush"}


def _violations(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        if node.func.attr not in WRITES:
            continue
        names = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
        names |= {n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)}
        if names & GUARDED:
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def _frames_topic_writers(path: Path) -> list[str]:
    """Modules that build a topic handle on the frames topic (streams.worker may: it hands it to the sink)."""
    text = path.read_text()
    return [str(path.relative_to(ROOT))] if "FRAMES_TOPIC" in text and "topic(" in text else []


def _store_callers(path: Path, writer: str = "put_released") -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    named = [c.func.attr if isinstance(c.func, ast.Attribute) else getattr(c.func, "id", "") for c in calls]
    return [f"{path.relative_to(ROOT)}:{c.lineno}" for c, n in zip(calls, named, strict=True) if n == writer]


def test_only_the_sink_writes_frames() -> None:
    modules = [p for d in ("streams", "services", "adapters") for p in (ROOT / d).rglob("*.py")]
    others = [p for p in modules if p not in (SINK, STORE)]
    assert len(others) > 5
    assert _violations(STORE), "the guard must recognise the store's own writes"
    assert _store_callers(SINK), "the guard must recognise the sink's call into the store"
    bad = [v for p in others for v in _violations(p)]
    assert bad == [], f"frame writes outside streams/release.py and adapters/frame_store.py: {bad}"
    callers = [v for p in modules if p != SINK for v in _store_callers(p)]
    assert callers == [], f"released frames stored by something other than the sink: {callers}"
    topic_users = [v for p in others for v in _frames_topic_writers(p)]
    assert topic_users == ["streams/worker.py"], topic_users


NOW_AGENT = ROOT / "streams" / "now_agent.py"


def test_only_the_now_worker_stores_provisional_frames() -> None:
    """The now layer's frames come only from the now worker, which stores only what NowEngine.step
    releases (the continual-release trees: cityscreen/privacy/now_layer.py)."""
    modules = [p for d in ("streams", "services", "adapters") for p in (ROOT / d).rglob("*.py")]
    callers = [v for p in modules for v in _store_callers(p, "put_now")]
    assert callers and all(v.startswith("streams/now_agent.py:") for v in callers), callers
    text = NOW_AGENT.read_text()
    assert ".step(" in text and "NowFrame(" not in text, "the now worker must publish the engine's frames"


async def test_the_sink_refuses_anything_but_an_aggregate() -> None:
    async def send(key: bytes, value: bytes) -> None:
        raise AssertionError("must not be reached")

    from cityscreen.settings import Settings

    sink = ReleaseSink(redis=None, send_frame=send, settings=Settings())
    with pytest.raises(TypeError, match="only a WindowAggregate"):
        await sink.publish({"cells": {}})  # type: ignore[arg-type]
