"""Loopback ports for the local stack: pick free ones; refuse taken ones with a message naming the fix."""

from __future__ import annotations

import errno
import socket
from collections.abc import Sequence
from dataclasses import dataclass

from cityscreen.errors import CityScreenError

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class PortRequest:
    """One port the stack needs: `port` 0 means any free one; `env_var` names the setting in messages."""

    name: str
    port: int
    env_var: str


def is_port_free(port: int, host: str = LOOPBACK) -> bool:
    """True when a listener could bind `host:port` now (with SO_REUSEADDR, as servers bind)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def free_port(host: str = LOOPBACK) -> int:
    """A port free on `host` now (the kernel's pick); for servers started right after, as tests do."""
    return resolve_ports([PortRequest("any", 0, "")], host)["any"]


def port_taken_message(request: PortRequest, host: str = LOOPBACK) -> str:
    return (
        f"{request.name} port {request.port} on {host} is already in use: stop whatever listens there "
        f"(see `ss -ltnp 'sport = :{request.port}'`), or set {request.env_var}=0 to pick a free port"
    )


def resolve_ports(requests: Sequence[PortRequest], host: str = LOOPBACK) -> dict[str, int]:
    """Fixed ports are checked; zeros get distinct free ports (held open together so none repeats)."""
    fixed = [r.port for r in requests if r.port]
    duplicates = sorted({p for p in fixed if fixed.count(p) > 1})
    if duplicates:
        names = ", ".join(r.env_var for r in requests if r.port in duplicates)
        raise CityScreenError(
            f"port {duplicates[0]} is configured twice ({names}): give each a different port"
        )
    for request in requests:
        if request.port and not is_port_free(request.port, host):
            raise CityScreenError(port_taken_message(request, host))
    chosen: dict[str, int] = {}
    held: list[socket.socket] = []
    try:
        for request in requests:
            if request.port:
                chosen[request.name] = request.port
                continue
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            held.append(sock)
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
            chosen[request.name] = port
    finally:
        for sock in held:
            sock.close()
    return chosen
