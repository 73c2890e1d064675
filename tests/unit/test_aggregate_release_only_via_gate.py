"""Nothing reaches Redis frame keys, the notify channel, the manifest or the frames topic except through
the release sink (streams/release.py), which accepts only a WindowAggregate and applies the gate."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from streams.release import ReleaseSink

ROOT = Path(__file__).resolve().parents[2]
SINK = ROOT / "streams" / "release.py"
# names whose use means "writing a released frame": the Redis layout and the frames topic
GUARDED = {
    "latest_frame_key",
    "frame_key",
    "frame_index_key",
    "NOTIFY_CHANNEL",
    "MANIFEST_KEY",
    "FRAMES_TOPIC",
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


def test_only_the_sink_writes_frames() -> None:
    modules = [p for d in ("streams", "services") for p in (ROOT / d).rglob("*.py") if p != SINK]
    assert len(modules) > 5
    assert _violations(SINK), "the guard must recognise the sink's own writes"
    bad = [v for p in modules for v in _violations(p)]
    assert bad == [], f"frame writes outside streams/release.py: {bad}"
    topic_users = [v for p in modules for v in _frames_topic_writers(p)]
    assert topic_users == ["streams/worker.py"], topic_users


async def test_the_sink_refuses_anything_but_an_aggregate() -> None:
    async def send(key: bytes, value: bytes) -> None:
        raise AssertionError("must not be reached")

    from cityscreen.settings import Settings

    sink = ReleaseSink(redis=None, send_frame=send, settings=Settings())
    with pytest.raises(TypeError, match="only a WindowAggregate"):
        await sink.publish({"cells": {}})  # type: ignore[arg-type]
