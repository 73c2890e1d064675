"""Pre-framed websocket messages: a frame is built once per view and written as-is to every socket.

Server-to-client frames are unmasked and, with permessage-deflate off, identical for every client, so
the fan-out can skip the per-client framing, UTF-8 encoding and ASGI layers. This fast path is used only
when the server is uvicorn's `websockets` protocol with no extension negotiated; otherwise the ASGI send
is used. A socket whose kernel buffer is still full skips the frame (latest wins), as its queue would.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from functools import cached_property
from typing import Any

OP_TEXT = 0x1
FIN = 0x80
SLOW_BUFFER_BYTES = 1 << 20  # unsent bytes above which a socket is too slow for another frame


def text_frame(payload: bytes) -> bytes:
    """One unmasked, final websocket text frame (RFC 6455 section 5.2)."""
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", FIN | OP_TEXT, n)
    elif n < 1 << 16:
        header = struct.pack("!BBH", FIN | OP_TEXT, 126, n)
    else:
        header = struct.pack("!BBQ", FIN | OP_TEXT, 127, n)
    return header + payload


class Message:
    """A message for one or many clients: its text, and its frame bytes built on first use."""

    __slots__ = ("__dict__", "text")

    def __init__(self, text: str) -> None:
        self.text = text

    @cached_property
    def framed(self) -> bytes:
        return text_frame(self.text.encode())


def _open_check(owner: Any) -> Callable[[], bool] | None:
    """How to tell that `owner`'s connection is open, for the two uvicorn protocols built on `websockets`."""
    from websockets.protocol import Protocol
    from websockets.protocol import State as SansIOState

    conn = getattr(owner, "conn", None)
    if isinstance(conn, Protocol):  # uvicorn's websockets-sansio protocol (its default)
        return None if conn.extensions else (lambda: conn.state is SansIOState.OPEN)
    try:
        from websockets.legacy.protocol import WebSocketCommonProtocol
    except ImportError:  # pragma: no cover - websockets without the legacy protocol
        return None
    if isinstance(owner, WebSocketCommonProtocol):  # uvicorn's legacy websockets protocol
        return None if owner.extensions else (lambda: owner.state is SansIOState.OPEN)
    return None


def server_send(asgi_send: Any, depth: int = 8) -> Any:
    """The server's own send behind middleware wrappers (closures over a `send`), else `asgi_send`.

    Starlette hands the app its exception middleware's `sender` closure, not uvicorn's bound method; the
    fast path needs the latter to find the connection.
    """
    send = asgi_send
    for _ in range(depth):
        if getattr(send, "__self__", None) is not None:
            return send
        code, cells = getattr(send, "__code__", None), getattr(send, "__closure__", None)
        if code is None or not cells or "send" not in code.co_freevars:
            break
        send = cells[code.co_freevars.index("send")].cell_contents
    return asgi_send


def raw_writer(asgi_send: Any) -> Callable[[bytes], bool] | None:
    """A `write(frame) -> sent?` for the socket behind `asgi_send`, or None when the fast path is unsafe."""
    owner = getattr(server_send(asgi_send), "__self__", None)
    transport = getattr(owner, "transport", None)
    is_open = _open_check(owner)
    if is_open is None or transport is None:
        return None

    def write(frame: bytes) -> bool:
        if not is_open() or transport.is_closing():
            raise ConnectionResetError("websocket closed")
        if transport.get_write_buffer_size() > SLOW_BUFFER_BYTES:
            return False
        transport.write(frame)
        return True

    return write
