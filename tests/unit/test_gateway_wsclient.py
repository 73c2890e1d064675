"""The load test's lean websocket client: handshake key, client masking and server frame parsing."""

from __future__ import annotations

import struct

import pytest

from services.gateway.wire import text_frame
from services.gateway.wsclient import OP_PING, OP_TEXT, accept_key, client_frame, parse_frames


def unmask(frame: bytes) -> tuple[int, bytes]:
    """Decode one masked client frame as a server would: (opcode, payload)."""
    assert frame[1] & 0x80, "client frames must be masked"
    n, at = frame[1] & 0x7F, 2
    if n == 126:
        n, at = struct.unpack_from("!H", frame, 2)[0], 4
    elif n == 127:
        n, at = struct.unpack_from("!Q", frame, 2)[0], 10
    mask, body = frame[at : at + 4], frame[at + 4 :]
    assert len(body) == n
    return frame[0] & 0x0F, bytes(b ^ mask[i % 4] for i, b in enumerate(body))


def test_accept_key_matches_the_rfc_example() -> None:
    assert accept_key(b"dGhlIHNhbXBsZSBub25jZQ==") == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


@pytest.mark.parametrize("size", [0, 1, 5, 125, 126, 4097, 70_000])
def test_client_frames_unmask_to_the_payload(size: int) -> None:
    payload = bytes(i % 251 for i in range(size))
    assert unmask(client_frame(OP_TEXT, payload)) == (OP_TEXT, payload)


@pytest.mark.parametrize("size", [3, 125, 126, 70_000])
def test_server_frames_parse_whole_and_wait_for_the_rest(size: int) -> None:
    payload = b"x" * size
    wire = text_frame(payload) + text_frame(b"next")
    buf = bytearray(wire[:-3])  # the second frame is cut short
    assert parse_frames(buf) == [(True, OP_TEXT, payload)]
    buf += wire[-3:]
    assert parse_frames(buf) == [(True, OP_TEXT, b"next")]
    assert buf == bytearray()


def test_a_ping_is_parsed_with_its_opcode() -> None:
    assert parse_frames(bytearray(b"\x89\x02hi")) == [(True, OP_PING, b"hi")]


def test_a_masked_server_frame_is_refused() -> None:
    with pytest.raises(ConnectionError):
        parse_frames(bytearray(client_frame(OP_TEXT, b"abc")))
