"""A lean websocket client for the load test: RFC 6455 handshake and framing on an asyncio Protocol.

Thousands of these share one client process. A full client library costs a task wake-up and several
Python layers per message per connection, so with 2,500 connections in a process the last one reads a
frame hundreds of milliseconds after its bytes arrived, and the load test would measure its own
clients. Here the receive time is taken in `data_received`, when the event loop hands over the bytes, and
nothing else runs per message but the frame parse and the callback.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import struct
import time
from collections.abc import Callable
from urllib.parse import urlsplit

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA

OnMessage = Callable[[bytes, float], None]  # (payload, receive time in epoch seconds)


class HandshakeError(ConnectionError):
    """The server refused or garbled the upgrade."""


def accept_key(key: bytes) -> bytes:
    """The Sec-WebSocket-Accept a server must answer to `key` (RFC 6455 section 4.2.2)."""
    return base64.b64encode(hashlib.sha1(key + GUID).digest())


def client_frame(opcode: int, payload: bytes) -> bytes:
    """One final, masked client frame (clients must mask, RFC 6455 section 5.3)."""
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 1 << 16:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    mask = os.urandom(4)
    key = (mask * (n // 4 + 1))[:n]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")
    return header + mask + masked


def parse_frames(buf: bytearray) -> list[tuple[bool, int, bytes]]:
    """Take every complete server frame off the front of `buf`: [(fin, opcode, payload)]."""
    out = []
    while len(buf) >= 2:
        b0, b1 = buf[0], buf[1]
        n, at = b1 & 0x7F, 2
        if n == 126:
            if len(buf) < 4:
                break
            n, at = struct.unpack_from("!H", buf, 2)[0], 4
        elif n == 127:
            if len(buf) < 10:
                break
            n, at = struct.unpack_from("!Q", buf, 2)[0], 10
        if b1 & 0x80:
            raise ConnectionError("a server frame was masked")
        if len(buf) < at + n:
            break
        out.append((bool(b0 & 0x80), b0 & 0x0F, bytes(buf[at : at + n])))
        del buf[: at + n]
    return out


class LeanClient(asyncio.Protocol):
    """One connection: upgrade, then hand each complete text/binary message to `on_message`."""

    def __init__(self, host: str, path: str, protocols: list[str], on_message: OnMessage) -> None:
        self.key = base64.b64encode(os.urandom(16))
        self.request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {self.key.decode()}\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Protocol: {', '.join(protocols)}\r\n\r\n"
        ).encode()
        self.on_message = on_message
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.buf = bytearray()
        self.upgraded = False
        self.parts: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        now_s = time.time()
        self.buf += data
        if not self.upgraded and not self._upgrade():
            return
        for fin, opcode, payload in parse_frames(self.buf):
            if opcode in (OP_TEXT, OP_BINARY, OP_CONT):
                self.parts.append(payload)
                if fin:
                    message, self.parts = b"".join(self.parts), []
                    self.on_message(message, now_s)
            elif opcode == OP_PING:
                self.send(OP_PONG, payload)
            elif opcode == OP_CLOSE:
                self.send(OP_CLOSE, payload[:2])
                self.close()

    def _upgrade(self) -> bool:
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return False
        head = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
        del self.buf[: end + 4]
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in head[1:])}
        if " 101 " not in head[0] + " " or headers.get("sec-websocket-accept", "").encode() != accept_key(
            self.key
        ):
            error = HandshakeError(f"upgrade refused: {head[0]}")
            if not self.opened.done():
                self.opened.set_exception(error)
            self.close()
            return False
        self.upgraded = True
        self.opened.set_result(None)
        return True

    def send(self, opcode: int, payload: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(client_frame(opcode, payload))

    def send_text(self, text: str) -> None:
        self.send(OP_TEXT, text.encode())

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionError("closed before the upgrade"))
        if not self.closed.done():
            self.closed.set_result(None)


async def connect(url: str, protocols: list[str], on_message: OnMessage, timeout_s: float = 60) -> LeanClient:
    """Open `url` (ws://host:port/path) and wait for the upgrade; raises HandshakeError when refused."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    loop = asyncio.get_running_loop()
    _, client = await asyncio.wait_for(
        loop.create_connection(
            lambda: LeanClient(f"{host}:{port}", path or "/", protocols, on_message), host, port
        ),
        timeout_s,
    )
    await asyncio.wait_for(asyncio.shield(client.opened), timeout_s)
    return client
