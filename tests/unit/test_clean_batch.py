"""The clean batch format: events round-trip through columns, bad batches are refused with the reason,
JSON clean records still decode, and a batch carries no raw identifier."""

from __future__ import annotations

import msgspec
import pytest

from cityscreen.clean_batch import (
    MAGIC,
    BatchError,
    decode_batch,
    decode_record,
    encode_batch,
)
from cityscreen.events import PaymentEvent, SimEvent, encode_many
from cityscreen.geo import cell_for
from tests.support.factories import clean_event

W0 = 1_767_225_600_000


def _sim(i: int, **kw: object) -> SimEvent:
    fields: dict[str, object] = dict(event_id=f"s{i}", ts_ms=W0 + i, person=f"{i * 7919:020x}", tower_id="T1",
                                     lat=22.54 + i * 0.001, gender="FM"[i % 2])  # fmt: skip
    return clean_event("sim", **(fields | kw))


def _pay(i: int) -> PaymentEvent:
    return clean_event("payment", event_id=f"p{i}", ts_ms=W0 + i, person=f"{i:020x}",
                       category=["food", "retail"][i % 2], amount_cny=0.125 * i + 0.005,
                       origin="BJ")  # fmt: skip


def test_a_batch_round_trips_every_field_the_aggregators_read() -> None:
    events = [_sim(i) for i in range(300)]  # 300 distinct cells would not fit one byte of index
    batch = decode_batch(encode_batch("sim", events, 8))
    assert (batch.kind, batch.res, batch.n) == ("sim", 8, 300)
    assert batch.ts_ms.tolist() == [e.ts_ms for e in events]
    assert batch.persons() == [e.person for e in events]
    assert batch.event_ids() == [e.event_id for e in events]
    assert batch.category("gender") == [e.gender for e in events]
    assert batch.rows([5])[0]["cell"] == cell_for(events[5].lat, events[5].lng, 8)
    assert len(set(batch.person_keys.tolist())) == 300


def test_payment_amounts_travel_as_floats() -> None:
    events = [_pay(i) for i in range(10)]
    batch = decode_batch(encode_batch("payment", events, 8))
    assert batch.amount_cny is not None and batch.amount_cny.tolist() == [e.amount_cny for e in events]
    assert batch.rows([3])[0]["category"] == "retail"


def test_a_json_record_decodes_as_one_batch_per_kind_run() -> None:
    tap = clean_event("transit", event_id="t", ts_ms=W0)
    batches = decode_record(encode_many([_sim(1), _sim(2), tap]), 8)
    assert [(b.kind, b.n) for b in batches] == [("sim", 2), ("transit", 1)]
    assert decode_record(b"[]", 8) == []


def test_a_batch_holds_one_kind_and_full_pseudonyms() -> None:
    with pytest.raises(BatchError, match="one kind"):
        encode_batch("payment", [_sim(1)], 8)
    with pytest.raises(BatchError, match="20-character pseudonym"):
        encode_batch("sim", [_sim(1, person="short")], 8)


def test_a_truncated_or_foreign_batch_is_refused() -> None:
    good = encode_batch("sim", [_sim(i) for i in range(4)], 8)
    with pytest.raises(BatchError, match="magic"):
        decode_batch(good[len(MAGIC) :])
    parts = msgspec.msgpack.decode(good[len(MAGIC) :])
    parts[3] = parts[3][:-8]  # one time missing
    with pytest.raises(BatchError, match="disagree"):
        decode_batch(MAGIC + msgspec.msgpack.encode(parts))
    with pytest.raises(msgspec.DecodeError):
        decode_batch(good[:-5])


def test_no_raw_identifier_or_position_is_encoded() -> None:
    event = _sim(3, tower_id="TOWER-4711", lat=22.5123456, lng=114.0654321)
    data = encode_batch("sim", [event], 8)
    for needle in (b"TOWER-4711", b"22.5123456", b"114.0654321"):
        assert needle not in data
