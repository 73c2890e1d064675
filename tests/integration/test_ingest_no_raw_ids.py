"""Integration: after replaying the shipped fixture through the real ingest worker, no raw IMSI, MSISDN,
account or card value appears on any downstream topic or anywhere in Redis."""

from __future__ import annotations

import gzip
import json
import random
import re
import string
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import redis

from cityscreen.events import (
    CLEAN_TOPICS,
    DEADLETTER_TOPIC,
    FRAMES_TOPIC,
    INGEST_TOPICS,
    RAW_IDENTIFIER_FIELDS,
)
from cityscreen.ingest import ACCEPTED
from services.stack import LocalStack, ManagedProcess
from services.stack.testing import REPO_ROOT
from tests.integration.test_ingest_deadletter import ingest_worker, produce, read_topic, stats  # noqa: F401
from tests.support.factories import raw_fields

pytestmark = pytest.mark.integration

FIXTURE = Path(REPO_ROOT) / "fixtures" / "shenzhen-10min.jsonl.gz"
_TOKEN = re.compile(rb"[A-Za-z0-9]+")
# separators people and forms put inside numbers: "46001 5555 0001", "SZT-5555-0001", "+86 138 0000 1111"
_DIGIT_SEPARATORS = re.compile(rb"(?<=\d)[\s\-+./()]+(?=\d)")


def raw_identifiers(lines: Iterable[bytes]) -> set[bytes]:
    found: set[bytes] = set()
    for line in lines:
        event = json.loads(line)
        found.update(str(event[f]).encode() for f in RAW_IDENTIFIER_FIELDS if event.get(f))
    return found


def leaks(blob: bytes, identifiers: set[bytes]) -> set[bytes]:
    """Raw identifiers present in `blob` as whole letter/digit tokens (every field, key and value), also
    when written with spaces, dashes, dots or plus signs between their digits."""
    return identifiers.intersection(_TOKEN.findall(blob) + _TOKEN.findall(_DIGIT_SEPARATORS.sub(b"", blob)))


def redis_blobs(client: redis.Redis) -> Iterator[bytes]:
    # the client decodes nothing (no decode_responses): every key and value is bytes
    for key in client.scan_iter(count=1000):
        yield key
        kind = client.type(key)
        if kind == b"string":
            yield cast(bytes | None, client.get(key)) or b""
        elif kind == b"hash":
            for k, v in cast(dict[bytes, bytes], client.hgetall(key)).items():
                yield k + b" " + v
        elif kind == b"zset":
            yield b" ".join(
                m for m, _ in cast(list[tuple[bytes, float]], client.zrange(key, 0, -1, withscores=True))
            )
        elif kind == b"list":
            yield b" ".join(cast(list[bytes], client.lrange(key, 0, -1)))
        elif kind == b"set":
            yield b" ".join(cast(set[bytes], client.smembers(key)))


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
    spaced = b" ".join(planted[i : i + 4] for i in range(0, len(planted), 4))
    assert leaks(b'{"note": "call ' + spaced + b' now"}', identifiers) == {planted}

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


def formatted_bad_records(identifiers: list[bytes], marker: str) -> list[tuple[str, bytes]]:
    """Rejected records that carry fixture identifiers written as people write them: under their own
    keys, under wrong keys, in free text, as the rejected value, and in records over 2 KB."""

    def spaced(ident: bytes, sep: str) -> str:
        text = ident.decode()
        return sep.join(text[i : i + 4] for i in range(0, len(text), 4))

    a, b, c = identifiers[:3]
    now_ms = int(time.time() * 1000)
    base = raw_fields("sim", event_id=marker, ts_ms=now_ms, imsi=spaced(a, " "), msisdn="+" + spaced(b, "-"))
    note = f"customer {spaced(a, ' ')} card {spaced(c, '-')} phone +{spaced(b, ' ')}"
    events = [
        base | {"lat": "north"},
        base | {"lat": "north", "note": note},
        base | {"lat": "north", "subscriber": spaced(c, ".")},
        base | {"origin": spaced(a, "-")},
        base | {"gender": spaced(b, " ")},
        base | {"kind": spaced(c, " ")},
        base | {"v": 2, "pad": note * 35},  # over 2 KB, under the module worker's max_payload_bytes
        base | {"tower_id": note},
    ]
    return [(INGEST_TOPICS["sim"], json.dumps(e).encode()) for e in events]


def test_no_formatted_identifier_or_free_text_in_dead_letters(
    stack: LocalStack,
    ingest_worker: ManagedProcess,  # noqa: F811
    wait_for: Callable[..., Any],
) -> None:
    with gzip.open(FIXTURE, "rb") as fh:
        identifiers = sorted(raw_identifiers(line for line, _ in zip(fh, range(200), strict=False)))
    marker = "".join(random.choices(string.ascii_lowercase, k=16))
    records = formatted_bad_records(identifiers, marker)
    bootstrap, partitions = stack.settings.kafka.bootstrap, stack.settings.kafka.partitions
    produce(bootstrap, records)

    def letters() -> list[bytes] | None:
        found = [v for v in read_topic(bootstrap, DEADLETTER_TOPIC, partitions) if marker.encode() in v]
        return found if len(found) >= len(records) else None

    ours = wait_for(letters, timeout_s=60, what="the formatted-identifier records on city.deadletter.v1")
    blob = b"\n".join(ours)
    assert not leaks(blob, set(identifiers[:3]))
    assert b"customer" not in blob and b"subscriber" not in blob
