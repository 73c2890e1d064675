"""Integration: after replaying the shipped fixture through the real ingest worker, no raw IMSI, MSISDN,
account or card value appears on any downstream topic or anywhere in Redis."""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from cityscreen.events import CLEAN_TOPICS, DEADLETTER_TOPIC, FRAMES_TOPIC, RAW_IDENTIFIER_FIELDS
from cityscreen.ingest import ACCEPTED
from services.stack import LocalStack, ManagedProcess
from services.stack.testing import REPO_ROOT
from tests.integration.test_ingest_deadletter import ingest_worker, read_topic, stats  # noqa: F401

pytestmark = pytest.mark.integration

FIXTURE = Path(REPO_ROOT) / "fixtures" / "shenzhen-10min.jsonl.gz"
_TOKEN = re.compile(rb"[A-Za-z0-9]+")


def raw_identifiers(lines: Iterable[bytes]) -> set[bytes]:
    found: set[bytes] = set()
    for line in lines:
        event = json.loads(line)
        found.update(str(event[f]).encode() for f in RAW_IDENTIFIER_FIELDS if event.get(f))
    return found


def leaks(blob: bytes, identifiers: set[bytes]) -> set[bytes]:
    """Raw identifiers present in `blob` as whole letter/digit tokens (every field, key and value)."""
    return identifiers.intersection(_TOKEN.findall(blob))


def redis_blobs(client: redis.Redis) -> Iterator[bytes]:
    for key in client.scan_iter(count=1000):
        yield key
        kind = client.type(key)
        if kind == b"string":
            yield client.get(key) or b""
        elif kind == b"hash":
            for k, v in client.hgetall(key).items():
                yield k + b" " + v
        elif kind == b"zset":
            yield b" ".join(m for m, _ in client.zrange(key, 0, -1, withscores=True))
        elif kind == b"list":
            yield b" ".join(client.lrange(key, 0, -1))
        elif kind == b"set":
            yield b" ".join(client.smembers(key))


def test_no_raw_identifier_downstream_of_ingest(
    stack: LocalStack,
    ingest_worker: ManagedProcess,  # noqa: F811
    spawn: Callable[..., ManagedProcess],
    wait_for: Callable[..., Any],
) -> None:
    with gzip.open(FIXTURE, "rb") as fh:
        lines = [line for line in fh if line.strip()]
    identifiers = raw_identifiers(lines)
    assert len(identifiers) > 1000

    # The scanner must be able to fail: a planted raw identifier is found.
    planted = sorted(identifiers)[0]
    sample = b'{"kind":"sim","person":"' + planted + b'","event_id":"x"}'
    assert leaks(sample, identifiers) == {planted}
    assert leaks(b"city:x:" + planted, identifiers) == {planted}

    client = redis.Redis.from_url(stack.redis_url)
    before = stats(client)
    # --batch 1: one event per record, so the module worker's small max_payload_bytes rejects none of them.
    replay = spawn("replay", str(FIXTURE), "--asap", "--batch", "1", "--no-progress", name="replay")
    wait_for(lambda: not replay.is_alive(), timeout_s=90, what="replay to finish")
    assert replay.returncode == 0, replay.tail()

    def handled() -> int:
        now = stats(client)
        return sum(
            now.get(k, 0) - before.get(k, 0) for k in now if k == ACCEPTED or k.startswith("deadletter.")
        )

    wait_for(
        lambda: handled() >= len(lines),
        timeout_s=90,
        what=f"ingest to handle {len(lines)} events (handled so far: see stats)",
    )
    assert stats(client)[ACCEPTED] - before.get(ACCEPTED, 0) > 0

    bootstrap, partitions = stack.settings.kafka.bootstrap, stack.settings.kafka.partitions
    found: set[bytes] = set()
    scanned = 0
    for topic in (*CLEAN_TOPICS.values(), DEADLETTER_TOPIC, FRAMES_TOPIC):
        for value in read_topic(bootstrap, topic, partitions):
            scanned += 1
            found |= leaks(value, identifiers)
    for blob in redis_blobs(client):
        found |= leaks(blob, identifiers)
    client.close()
    assert scanned > 0
    assert not found, f"{len(found)} raw identifiers downstream of ingest, e.g. {sorted(found)[:3]}"
