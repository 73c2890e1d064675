"""Integration: bad input on the real `city.ingest.*` topics reaches `city.deadletter.v1` with its reason.

One ingest worker (`cityscreen worker --role ingest`, max_payload_bytes lowered through the env) is
shared by the module; each test uses its own letters-only event ids so shared topics cannot confuse it.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import string
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import redis
from aiokafka import AIOKafkaProducer

from cityscreen import ingest
from cityscreen.clean_batch import decode_batch
from cityscreen.events import CLEAN_TOPICS, DEADLETTER_TOPIC, INGEST_TOPICS
from cityscreen.settings import to_env
from cityscreen.store_keys import STATS_KEY
from services.generator.consume import read_to_end
from services.stack import LocalStack, ManagedProcess
from services.stack import spawn as spawn_process
from services.stack.testing import REPO_ROOT
from tests.support.factories import raw_fields

pytestmark = pytest.mark.integration

MAX_PAYLOAD_BYTES = 4096  # small, so an oversize record is cheap to build
YEAR_MS = 365 * 24 * 3600 * 1000


def token(n: int = 16) -> str:
    """Letters only: the dead-letter preview masks digit runs, letters survive for matching."""
    return "".join(random.choices(string.ascii_lowercase, k=n))


def make_event(kind: str = "sim", **overrides: Any) -> dict[str, Any]:
    # fresh letters-only ids and accounts (the dead-letter preview masks digit runs, letters survive)
    fields: dict[str, Any] = {"event_id": token(), "ts_ms": int(time.time() * 1000)}
    if kind == "payment":
        fields["account"] = "acct-" + token(8)
    elif kind == "transit":
        fields["card"] = "SZT" + token(8)
    return raw_fields(kind, **(fields | overrides))


def read_topic(bootstrap: str, topic: str, partitions: int) -> list[bytes]:
    """Every record value on `topic` up to its current end (no consumer group)."""
    return [r.value for r in asyncio.run(read_to_end(bootstrap, [topic], partitions))]


def produce(bootstrap: str, records: list[tuple[str, bytes]]) -> None:
    async def run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_request_size=4 * 1024 * 1024)
        await producer.start()
        try:
            for topic, value in records:
                await producer.send_and_wait(topic, value)
        finally:
            await producer.stop()

    asyncio.run(run())


def clean_event_ids(bootstrap: str, partitions: int) -> set[str]:
    ids: set[str] = set()
    for topic in CLEAN_TOPICS.values():
        for value in read_topic(bootstrap, topic, partitions):
            ids.update(decode_batch(value).event_ids())  # the ingest edge writes clean batches only
    return ids


def dead_letters(bootstrap: str, partitions: int) -> list[dict[str, Any]]:
    return [json.loads(v) for v in read_topic(bootstrap, DEADLETTER_TOPIC, partitions)]


def stats(client: redis.Redis) -> dict[str, int]:
    return {k.decode(): int(v) for k, v in cast(dict[bytes, bytes], client.hgetall(STATS_KEY)).items()}


@pytest.fixture(scope="module")
def ingest_worker(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ManagedProcess]:
    settings = stack.settings.model_copy(update={"max_payload_bytes": MAX_PAYLOAD_BYTES})
    env = {**os.environ, **to_env(settings)}
    proc = spawn_process(
        "ingest-module",
        [sys.executable, "-m", "services.cli", "worker", "--role", "ingest"],
        log_dir=tmp_path_factory.mktemp("ingest-logs"),
        env=env,
        cwd=REPO_ROOT,
    )
    yield proc
    proc.stop(10.0)
    print(f"--- ingest worker (exit {proc.returncode}):\n{proc.tail()}")


@pytest.fixture
def redis_client(stack: LocalStack) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(stack.redis_url)
    yield client
    client.close()


def _bad_cases() -> list[tuple[str, str, bytes, str]]:
    """(reason, topic, record, marker in the preview) for each bad-input class sent as a single record."""
    sim, pay = INGEST_TOPICS["sim"], INGEST_TOPICS["payment"]
    cases = []

    def add(reason: str, topic: str, event: dict[str, Any]) -> None:
        cases.append((reason, topic, json.dumps(event).encode(), event["event_id"]))

    add(ingest.INVALID_SCHEMA, sim, make_event(birth_year="nineteen"))  # wrong type
    wrong = make_event("payment")
    wrong["amount_cny"] = "lots"
    add(ingest.INVALID_SCHEMA, pay, wrong)
    missing = make_event()
    del missing["tower_id"]
    add(ingest.INVALID_SCHEMA, sim, missing)
    add(ingest.OUT_OF_CITY, sim, make_event(lat=48.85, lng=2.35))
    add(ingest.TS_SKEW, sim, make_event(ts_ms=int(time.time() * 1000) + 10 * YEAR_MS))
    add(ingest.TS_SKEW, pay, make_event("payment", ts_ms=int(time.time() * 1000) - 10 * YEAR_MS))
    add(ingest.UNKNOWN_VERSION, sim, make_event(v=99))
    big = make_event(pad="x" * (MAX_PAYLOAD_BYTES + 100))
    add(ingest.OVERSIZE, sim, big)
    junk = token()
    cases.append((ingest.MALFORMED, sim, b"\x00\xff not json " + junk.encode(), junk))
    junk_array = token()
    cases.append((ingest.MALFORMED, pay, f'[{{"event_id": "{junk_array}", "kind":'.encode(), junk_array))
    return cases


def test_bad_input_reaches_the_real_deadletter_topic(
    stack: LocalStack, ingest_worker: ManagedProcess, redis_client: redis.Redis, wait_for: Callable[..., Any]
) -> None:
    bootstrap, partitions = stack.settings.kafka.bootstrap, stack.settings.kafka.partitions
    singles = _bad_cases()
    records: list[tuple[str, bytes]] = [(topic, value) for _, topic, value, _ in singles]
    expected_dead = [(reason, marker) for reason, _, _, marker in singles]
    valid: list[dict[str, Any]] = []
    # Each parseable bad class again inside an array, between valid events of the same kind.
    for reason, topic, value, marker in singles:
        if reason in (ingest.MALFORMED, ingest.OVERSIZE):
            continue
        kind = next(k for k, t in INGEST_TOPICS.items() if t == topic)
        around = [make_event(kind), make_event(kind)]
        valid += around
        array = (
            b"["
            + json.dumps(around[0]).encode()
            + b","
            + value
            + b","
            + json.dumps(around[1]).encode()
            + b"]"
        )
        records.append((topic, array))
        expected_dead.append((reason, marker))
    for kind in ("sim", "payment", "transit"):  # plain valid single records too
        event = make_event(kind)
        valid.append(event)
        records.append((INGEST_TOPICS[kind], json.dumps(event).encode()))

    before = stats(redis_client)
    started_ms = int(time.time() * 1000) - 1000
    produce(bootstrap, records)

    valid_ids = {e["event_id"] for e in valid}
    wait_for(
        lambda: valid_ids <= clean_event_ids(bootstrap, partitions),
        timeout_s=60,
        what="valid events on clean topics",
    )

    def found() -> list[tuple[str, str]] | None:
        # previews of unparsed records (malformed, oversize) show only their size: those are matched
        # by reason among this run's letters, the others by their event id in the preview
        letters = [d for d in dead_letters(bootstrap, partitions) if d.get("ingest_ts_ms", 0) >= started_ms]
        hits = []
        unparsed = [d for d in letters if d["payload_preview"].startswith("<")]
        for reason, marker in expected_dead:
            if reason in (ingest.MALFORMED, ingest.OVERSIZE):
                match = [d for d in unparsed if d["reason"] == reason]
                if match:
                    unparsed.remove(match[0])
            else:
                match = [d for d in letters if marker in d["payload_preview"]]
            if not match:
                return None
            hits.append((reason, match[0]["reason"]))
        return hits

    hits = wait_for(found, timeout_s=60, what="every bad record on city.deadletter.v1")
    assert [got for _, got in hits] == [want for want, _ in hits]

    expected_counts: dict[str, int] = {ingest.ACCEPTED: len(valid)}
    for reason, _ in expected_dead:
        key = f"deadletter.{reason}"
        expected_counts[key] = expected_counts.get(key, 0) + 1

    def delta() -> dict[str, int]:
        now = stats(redis_client)
        return {k: now.get(k, 0) - before.get(k, 0) for k in expected_counts}

    wait_for(lambda: delta() == expected_counts, timeout_s=30, what=f"stats deltas {expected_counts}")
    assert delta() == expected_counts


def test_production_mode_with_placeholder_secret_refuses_to_start(stack: LocalStack) -> None:
    settings = stack.settings.model_copy(update={"mode": "development"})
    env = {**os.environ, **to_env(settings), "CITY_MODE": "production", "CITY_PSEUDONYM_SECRET": "changeme"}
    done = subprocess.run(
        [sys.executable, "-m", "services.cli", "worker", "--role", "ingest"],
        env=env, cwd=Path(REPO_ROOT), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode != 0
    assert "CITY_PSEUDONYM_SECRET" in done.stdout + done.stderr
