"""The `/ws/live` socket: access checks before accept, subscribe, snapshot, then conflated updates.

Protocol (JSON text). Client: `{"type": "subscribe", "res": 7, "layers": [...], "bbox": [w, s, e, n],
"breakdown": "gender" | null}` at any time (a new subscription replaces the old and brings a new
snapshot), `{"type": "ping"}`. Server: `snapshot` (the latest frame of the view, or `waiting` when there
is none yet), `frame` (at most `update_hz` per second, latest wins), `now`, `heartbeat`, `pong`, `error`.
`snapshot` and `frame` carry `"pane": "final"`: a closed window's released frame. `now` (`"pane":
"early"`, only to views with the "population" layer) is the now layer's provisional tick: `res`,
`window_start_ms` and `window_s` of the still-open window, `tick_ms` (the event time its values hold),
`published_ms`, `privacy`, `cells` ({cell: {"population.persons": value or null}}, totals only, in the
bbox), `noise_sd` ({cell: noise standard deviation}) and `budget` (the day's privacy budget reading).
One follows the snapshot when there is one, then at most one per tick, newest only, never an older tick;
the window's final frame replaces it on the screen. Now messages never push a pending frame out.
A reconnecting client sends its subscription again and gets a fresh snapshot: there is no server state
to resume, so several gateway processes are interchangeable.

A bad message (not JSON, too deep, a field of the wrong type, a number out of range) gets an `error`
and the socket stays. Closes: 4401 / 4403 refused, 1009 message too big, 1011 a failure of the server's
own. However a socket ends, its client leaves the hub and the gauge (`live_socket`'s `finally`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from typing import Any

from starlette.responses import JSONResponse
from starlette.websockets import WebSocket, WebSocketDisconnect

from cityscreen.settings import Settings
from services.gateway import auth
from services.gateway.conflate import LatestQueue
from services.gateway.hub import PACING_SLACK, Client, Hub
from services.gateway.metrics import GatewayMetrics
from services.gateway.view import ViewError, encode_message, make_view, view_frame
from services.gateway.wire import Message, raw_writer

CLOSE_INTERNAL_ERROR = 1011  # RFC 6455: the server met a condition that kept it from serving the request
SUBSCRIBE_SHAPE = (
    'use {"type": "subscribe", "res": int, "layers": [str], "bbox": [w, s, e, n], "breakdown": str}'
)
log = logging.getLogger(__name__)


async def refuse(websocket: WebSocket, status: int, close_code: int, reason: str) -> None:
    """Refuse before accept: an HTTP status when the server can send one, else a close code."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(JSONResponse({"detail": reason}, status_code=status))
    else:
        await websocket.close(code=close_code, reason=reason)


def access_problem(websocket: WebSocket, settings: Settings) -> tuple[int, int, str] | None:
    """(HTTP status, close code, reason) when the socket must be refused, else None."""
    gw = settings.gateway
    if not auth.is_allowed_origin(
        websocket.headers.get("origin"), websocket.headers.get("host"), gw.allowed_origins
    ):
        return 403, auth.CLOSE_FORBIDDEN_ORIGIN, "origin not allowed: add it to CITY_GATEWAY__ALLOWED_ORIGINS"
    token = auth.websocket_token(websocket.query_params, websocket.scope.get("subprotocols", []))
    if not auth.is_valid_token(token, gw.operator_tokens):
        return 401, auth.CLOSE_UNAUTHORIZED, "missing or unknown operator token"
    return None


async def live_socket(websocket: WebSocket, settings: Settings, hub: Hub, metrics: GatewayMetrics) -> None:
    problem = access_problem(websocket, settings)
    if problem is not None:
        metrics.ws_refused.labels(reason=str(problem[0])).inc()
        await refuse(websocket, *problem)
        return
    await websocket.accept(subprotocol=auth.chosen_subprotocol(websocket.scope.get("subprotocols", [])))
    client = Client(
        queue=LatestQueue(settings.gateway.queue_frames),
        min_interval_s=PACING_SLACK / settings.gateway.update_hz,
        write=raw_writer(websocket._send),
    )
    hub.add(client)
    metrics.ws_clients.inc()
    tasks: list[asyncio.Task[None]] = []
    try:
        tasks += [
            asyncio.create_task(_receive(websocket, client, settings, hub)),
            asyncio.create_task(_send(websocket, client)),
        ]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        # the client is forgotten first, whatever ended the socket: a task's exception re-raised
        # below once skipped this, and every such socket left a client in the hub and the gauge
        hub.remove(client)
        metrics.ws_clients.dec()
        metrics.ws_frames_conflated.inc(client.queue.dropped)
        metrics.ws_messages_sent.inc(client.sent)
        for t in tasks:
            t.cancel()
        for t in tasks:
            try:
                await t
            except (asyncio.CancelledError, WebSocketDisconnect, OSError):
                pass  # the peer went away or we cancelled it: the normal ends
            except Exception:
                log.exception("websocket task failed; the socket is closed with 1011")
                await _close_quietly(websocket, CLOSE_INTERNAL_ERROR, "internal error")


async def _receive(websocket: WebSocket, client: Client, settings: Settings, hub: Hub) -> None:
    limit = settings.gateway.max_message_bytes
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        raw = message.get("text") or message.get("bytes") or ""
        if len(raw) > limit:
            await websocket.close(code=auth.CLOSE_TOO_BIG, reason=f"message over {limit} bytes")
            return
        view_before = client.view
        try:
            reply = await handle_message(raw, client, settings, hub)
            if reply is not None:
                client.queue.put(Message(reply))
            if client.view is not view_before:  # subscribed: the current now frame follows the snapshot
                await hub.offer_current_now(client)
        except Exception:
            # handle_message answers bad input itself; anything left is a bug: close properly, not drop
            log.exception("websocket message handler failed; closing the socket with 1011")
            await _close_quietly(websocket, CLOSE_INTERNAL_ERROR, "internal error")
            return


async def _close_quietly(websocket: WebSocket, code: int, reason: str) -> None:
    with contextlib.suppress(Exception):  # already closed, or the transport is gone: nothing to tell
        await websocket.close(code=code, reason=reason)


def requested_res(value: object) -> int:
    """The `res` of a subscribe message as an int; ViewError (answered to the client) for anything else:
    a bool, a string, a fraction, or a number out of range (1e400 is inf, and int(inf) raised)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ViewError("res must be an integer H3 resolution", "res")
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        raise ViewError("res must be an integer H3 resolution", "res")
    if not -(2**31) <= value < 2**31:
        raise ViewError("res is out of range: choose a released resolution", "res")
    return int(value)


async def handle_message(raw: str | bytes, client: Client, settings: Settings, hub: Hub) -> str | None:
    """Apply one client message; returns the reply to queue (a snapshot, pong or error)."""
    try:
        msg: dict[str, Any] = json.loads(raw)
        kind = msg.get("type")
    except (ValueError, AttributeError, RecursionError):  # RecursionError: deeply nested JSON
        return encode_message("error", {"message": "messages are JSON objects with a 'type'"})
    if kind == "ping":
        return encode_message("pong", {"ts_ms": int(time.time() * 1000)})
    if kind != "subscribe":
        return encode_message("error", {"message": f"unknown message type {kind!r}: use subscribe or ping"})
    try:
        view = make_view(
            requested_res(msg.get("res", settings.window.resolutions[-1])),
            msg.get("layers"),
            msg.get("bbox"),
            msg.get("breakdown"),
            resolutions=settings.window.resolutions,
        )
    except (ViewError, TypeError, ValueError, OverflowError) as exc:
        # TypeError / ValueError: a field of the wrong shape (layers of lists, bbox of strings)
        message = str(exc) if isinstance(exc, ViewError) else f"bad subscribe message: {SUBSCRIBE_SHAPE}"
        return encode_message("error", {"message": message})
    hub.watch(client, view)
    client.clear()  # frames of the old view are of no use now
    frame = await hub.snapshot(view.res)
    if frame is None:
        return encode_message("waiting", {"res": view.res})
    return encode_message("snapshot", view_frame(frame, view))


async def _send(websocket: WebSocket, client: Client) -> None:
    """Send what the fan-out queued (replies, heartbeats, frames that found the socket busy or early)."""
    send = websocket._send  # the raw ASGI send: Starlette's per-call checks add up over thousands of sockets
    while True:
        message = await client.queue.get()
        client.busy = True
        text = message.text
        is_frame = text.startswith('{"type":"frame"')
        if is_frame:
            # updates are paced (latest wins meanwhile); replies (snapshot, pong, error) and now frames
            # (at most one per tick) go out at once
            wait_s = client.next_frame_s - time.monotonic()
            if wait_s > 0:
                await asyncio.sleep(wait_s)
        if client.write is not None and (is_frame or text.startswith('{"type":"now"')):
            sent = client.write(message.framed)
        else:
            await send({"type": "websocket.send", "text": text})
            sent = True
        client.busy = False
        if not sent:
            client.queue.dropped += 1  # the socket has not taken the last frame yet: skip this one
            continue
        client.sent += 1
        client.last_sent_s = time.monotonic()
        if is_frame:
            client.next_frame_s = client.last_sent_s + client.min_interval_s
