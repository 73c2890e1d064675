"""Every event counted once although the at-least-once ingest edge writes some twice (issue 16).

The ingest edge's clean records carry their events' raw keys (cityscreen.provenance) and the aggregators
skip keys already counted (cityscreen/aggregate/repeats.py). Simulated here without Kafka: writers that
batch the same raw records differently, a worker killed between delivering a batch and committing it,
one that lost its partitions but still writes (its records interleaved with its successor's in any
order), a batch delivered partly and retried, and an aggregator restored from its persisted state.
"""

from __future__ import annotations

import itertools
import random
from collections import Counter
from collections.abc import Sequence

import numpy as np
import pytest

from cityscreen.aggregate.close import AggConfig
from cityscreen.aggregate.partition import COUNTED, REPEATED, PartitionState
from cityscreen.aggregate.repeats import Seen, take_fresh
from cityscreen.clean_batch import decode_batch, encode_batch
from cityscreen.events import INGEST_SIM_TOPIC, INGEST_TRANSIT_TOPIC
from cityscreen.ingest_batch import BatchValidator
from cityscreen.provenance import LAST_ELEMENT, batch_bounds, record_provenance
from cityscreen.settings import Settings
from tests.unit.test_ingest_batch import NOW_MS, config, records

CFG = AggConfig.from_settings(Settings())
RES = CFG.base_res
Log = dict[tuple[str, int], list[bytes]]  # clean (kind, partition) -> its records in log order
VALUES = records(6000, seed=11, arrays=0.3)  # ~960 good and bad raw records, some arrays of events


def run_batches(
    values: Sequence[bytes], cuts: Sequence[int], topic: str = INGEST_SIM_TOPIC, partitions: int = 4
) -> list[Log]:
    """A writer that reads raw offsets [cuts[i], cuts[i + 1]) as batch i: each batch's clean records."""
    validator = BatchValidator(config(partitions))
    out = []
    for lo, hi in itertools.pairwise(cuts):
        result = validator.run([(values[o], topic, 0, o) for o in range(lo, hi)], NOW_MS)
        log: Log = {}
        for kind, partition, value in result.records(RES):
            log.setdefault((kind, partition), []).append(value)
        out.append(log)
    return out


def accepted_ids(values: Sequence[bytes]) -> Counter[str]:
    """The event ids one clean pass over all raw records writes."""
    ids: Counter[str] = Counter()
    for log in run_batches(values, [0, len(values)]):
        for value in (v for vs in log.values() for v in vs):
            ids.update(decode_batch(value).event_ids())
    return ids


def counted_ids(log: Log) -> Counter[str]:
    """What an aggregator counts reading every clean partition's log in order."""
    ids: Counter[str] = Counter()
    for _, values in sorted(log.items()):
        seen: dict[str, Seen] = {}
        for value in values:
            batch = decode_batch(value)
            assert batch.provenance is not None
            fresh = take_fresh(seen, batch.provenance)
            all_ids = batch.event_ids()
            ids.update(all_ids[i] for i in fresh.tolist())
    return ids


def joined(*logs: Log) -> Log:
    out: Log = {}
    for log in logs:
        for key, values in log.items():
            out.setdefault(key, []).extend(values)
    return out


def interleave(rng: random.Random, a: list[bytes], b: list[bytes]) -> list[bytes]:
    """A random merge of two writers' records that keeps each writer's own order."""
    out, i, j = [], 0, 0
    while i < len(a) or j < len(b):
        if j == len(b) or (i < len(a) and rng.random() < 0.5):
            out.append(a[i])
            i += 1
        else:
            out.append(b[j])
            j += 1
    return out


def cuts_of(rng: random.Random, lo: int, hi: int, most: int) -> list[int]:
    cuts = [lo]
    while cuts[-1] < hi:
        cuts.append(min(hi, cuts[-1] + rng.randrange(1, most)))
    return cuts


def test_a_clean_pass_counts_every_event_once_and_repeats_nothing() -> None:
    want = accepted_ids(VALUES)
    assert sum(want.values()) > 4000
    logs = run_batches(VALUES, cuts_of(random.Random(1), 0, len(VALUES), 120))
    assert counted_ids(joined(*logs)) == want


@pytest.mark.parametrize("seed", range(6))
def test_a_worker_killed_before_committing_makes_repeats_that_are_counted_once(seed: int) -> None:
    """Writer A delivers batches up to `killed_at` but commits only the ones before it; B starts at
    A's last committed offset and batches differently."""
    rng = random.Random(seed)
    a_cuts = cuts_of(rng, 0, len(VALUES), 150)
    killed_at = rng.randrange(1, len(a_cuts) - 1)
    a = run_batches(VALUES, a_cuts[: killed_at + 2])
    b = run_batches(VALUES, cuts_of(rng, a_cuts[killed_at], len(VALUES), 250))
    log = joined(*a, *b)
    on_topics = Counter(i for values in log.values() for v in values for i in decode_batch(v).event_ids())
    assert sum(on_topics.values()) > sum(accepted_ids(VALUES).values())  # the edge did write repeats
    assert counted_ids(log) == accepted_ids(VALUES)


@pytest.mark.parametrize("seed", range(6))
def test_a_zombie_writer_interleaved_with_its_successor_is_counted_once(seed: int) -> None:
    """A lost its partitions but goes on writing batches after B took over at A's committed offset:
    each partition sees both writers' records merged in any order (each writer's own order kept)."""
    rng = random.Random(100 + seed)
    a_cuts = cuts_of(rng, 0, len(VALUES), 150)
    committed = rng.randrange(1, len(a_cuts) - 2)
    a = run_batches(VALUES, a_cuts)
    b = run_batches(VALUES, cuts_of(rng, a_cuts[committed], len(VALUES), 250))
    before, a_late, b_all = joined(*a[:committed]), joined(*a[committed:]), joined(*b)
    log = {
        key: before.get(key, []) + interleave(rng, a_late.get(key, []), b_all.get(key, []))
        for key in before.keys() | a_late.keys() | b_all.keys()
    }
    assert counted_ids(log) == accepted_ids(VALUES)


def test_a_batch_delivered_in_part_then_retried_whole_is_counted_once() -> None:
    """The first try delivers a partition's second record but not its first (it timed out); the retry
    writes both again, so the first arrives after the second."""
    logs = run_batches(VALUES, [0, 800, len(VALUES)], partitions=1)
    key = max(logs[0], key=lambda k: len(logs[0][k]))
    assert len(logs[0][key]) >= 2
    first_try = dict(logs[0])
    first_try[key] = logs[0][key][1:]
    log = joined(first_try, logs[0], logs[1])
    assert counted_ids(log) == accepted_ids(VALUES)


def test_spans_of_one_batch_tile_its_keys_and_join_the_next_batch() -> None:
    names = ["raw:0", "raw:1"]
    bounds = batch_bounds(names, np.array([0, 0, 1, 0]), np.array([10, 11, 7, 14]))
    assert bounds == {"raw:0": (10, 14), "raw:1": (7, 7)}
    source = np.array([0, 1, 0, 0, 0])
    offset = np.array([10, 7, 11, 11, 14])
    element = np.array([3, 0, 0, 1, 0], np.uint32)
    first, second = record_provenance(names, bounds, source, offset, element, [0, 3, 5])
    assert first.spans == [("raw:0", 10, (10, 0), (11, 0)), ("raw:1", 7, (7, 0), (7, LAST_ELEMENT))]
    assert second.spans == [("raw:0", 10, (11, 1), (14, LAST_ELEMENT))]
    assert first.source.tolist() == [0, 1, 0] and second.source.tolist() == [0, 0]
    seen = Seen()
    for span in (*first.spans[:1], *second.spans):
        seen.add(span[2], span[3])
    seen.below(15)  # the next batch's floor
    assert seen.intervals == [((0, 0), (14, LAST_ELEMENT))]


def test_provenance_travels_in_the_clean_batch_and_older_records_have_none() -> None:
    logs = run_batches(VALUES[:500], [0, 500], INGEST_TRANSIT_TOPIC)
    value = next(v for vs in logs[0].values() for v in vs)
    batch = decode_batch(value)
    assert batch.provenance is not None
    assert [s[0] for s in batch.provenance.spans] == [f"{INGEST_TRANSIT_TOPIC}:0"]
    assert len(batch.provenance.offset) == batch.n
    events = [e for e in (decode_batch(v) for vs in logs[0].values() for v in vs) if e.n]
    assert decode_batch(encode_batch("sim", [], RES)).provenance is None
    assert all(e.provenance is not None for e in events)


def test_the_aggregate_state_keeps_what_it_counted_across_a_restore() -> None:
    """A SIGKILLed aggregator restores from its deltas: repeats written after the restore are skipped."""
    rng = random.Random(7)
    a = run_batches(VALUES, cuts_of(rng, 0, 600, 150))
    b = run_batches(VALUES, cuts_of(rng, 300, 600, 100))  # writes 300..600 again
    kind, partition = max(joined(*a), key=lambda k: len(joined(*a)[k]))
    st, deltas = PartitionState(partition, CFG), []
    for offset, value in enumerate(joined(*a)[kind, partition]):
        st.add_record(kind, offset, decode_batch(value))
        taken = st.take_delta()
        if taken is not None:
            deltas.append(taken[0])
    first_tally = st.tally[COUNTED]
    restored = PartitionState.restore(partition, CFG, None, deltas)
    start = len(joined(*a)[kind, partition])
    for offset, value in enumerate(joined(*b).get((kind, partition), []), start):
        restored.add_record(kind, offset, decode_batch(value))
    assert restored.tally[COUNTED] == 0
    assert restored.tally[REPEATED] > 0
    assert first_tally == sum(decode_batch(v).n for v in joined(*a)[kind, partition])
