"""Access checks for the gateway: operator tokens and websocket Origins, as plain functions.

Browsers cannot set headers on a WebSocket, so a socket may carry its token in the query string
(`?token=`) or, preferably, as a subprotocol `bearer.<token>` next to `cityscreen.v1` (subprotocols
stay out of access logs). REST calls use `Authorization: Bearer <token>`.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

WS_SUBPROTOCOL = "cityscreen.v1"
TOKEN_SUBPROTOCOL_PREFIX = "bearer."

# Close codes used when a socket is refused after the handshake (servers without denial responses).
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN_ORIGIN = 4403
CLOSE_TOO_BIG = 1009
CLOSE_BAD_MESSAGE = 1008


def is_valid_token(token: str | None, operator_tokens: Iterable[str]) -> bool:
    """True when `token` is one of the configured operator tokens (constant-time comparison)."""
    if not token:
        return False
    given = token.encode()
    # check every token so the time taken does not reveal which one nearly matched
    return any([hmac.compare_digest(given, t.encode()) for t in operator_tokens if t])


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None."""
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


def websocket_token(query: Mapping[str, str], subprotocols: Iterable[str]) -> str | None:
    """The token offered by a websocket client: a `bearer.<token>` subprotocol wins over `?token=`."""
    for proto in subprotocols:
        if proto.startswith(TOKEN_SUBPROTOCOL_PREFIX):
            return proto[len(TOKEN_SUBPROTOCOL_PREFIX) :] or None
    return query.get("token") or None


def chosen_subprotocol(subprotocols: Iterable[str]) -> str | None:
    """The subprotocol the server answers with: ours when offered (never echo the token back)."""
    return WS_SUBPROTOCOL if WS_SUBPROTOCOL in subprotocols else None


def is_allowed_origin(origin: str | None, host: str | None, allowed_origins: Iterable[str]) -> bool:
    """May a socket from `origin` connect? Allowed: listed origins, the gateway's own origin, no Origin.

    Browsers always send Origin on a websocket, so a missing one is a non-browser client (load test,
    CLI), which cross-site request forgery cannot drive.
    """
    if origin is None:
        return True
    origin = origin.rstrip("/")
    if origin in {o.rstrip("/") for o in allowed_origins}:
        return True
    # same origin: the page served by this gateway, on whatever port it was given
    return host is not None and urlsplit(origin).netloc.lower() == host.lower()
