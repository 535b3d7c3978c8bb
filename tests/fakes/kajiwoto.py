"""A fake Kajiwoto: its GraphQL login over HTTP and its Socket.IO v4 chat socket.

Both speak the wire format the web app uses (see providers.md), on 127.0.0.1. The socket
side is strict on purpose: it checks every event's secret with its own arithmetic, the
userData map, the order login -> subscribe -> chatEnter -> chatSend -> chatSubmit, and the
values the client must carry over (socket id, room version). Whatever it finds wrong goes
to ``violations``; tests assert that list is empty.

    async with fake_kajiwoto(reply="Hi!", mood="HAPPY") as kaji:
        llm = kajiwoto.create(ModuleSpec("k", "llm", "kajiwoto", kaji.options(timeout=2)))

Fault modes (``fault=``): ``"login_error"`` (GraphQL errors body), ``"graphql_500"``,
``"graphql_429"`` (the first ``fault_times`` logins get 429 with ``Retry-After:
retry_after`` and a GraphQL errors body), ``"connect_refused"`` (``44`` on connect; both
take their text from ``error_message``), ``"hang"`` / ``"drop"`` / ``"garbage"`` at the
event named by ``fault_at`` (default ``"chatSubmit"``): stop answering, cut the TCP
connection, or send a frame that is not Socket.IO. Wrong credentials are refused as the
service would: bad credentials -> GraphQL error, bad token -> ``44``.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import trio
from websockets.exceptions import ConnectionClosed
from websockets.trio.server import ServerConnection

from bridge.providers.llm import socketio
from bridge.providers.llm.socketio import EngineType, SocketType
from tests.fakes.http_server import FakeRequest, Responder, serve_http
from tests.fakes.inflight import InFlight
from tests.fakes.ws_server import serve_ws

FLOW = ("login", "subscribe", "chatEnter", "chatSend", "chatSubmit")
FAULTS = (None, "login_error", "graphql_500", "graphql_429", "connect_refused", "hang", "drop", "garbage")
#: Sent by the "garbage" fault: an Engine.IO packet type that does not exist, then junk.
GARBAGE_FRAME = "9<html>upstream reset</html>"


def expected_secret(stamp: str) -> str:
    """The fake's own reading of the secret rule, written apart from the client's."""
    digits = [int(c) for c in stamp]
    pick = digits[7] if digits[8] & 1 else digits[8]
    return base64.b64encode(str(int(stamp) * (pick * 10 + 1)).encode()).decode()


@dataclass
class FakeKajiwoto:
    graphql_url: str
    socket_url: str
    username: str
    password: str
    auth_token: str
    user_id: str
    room_id: str
    graphql_requests: list[FakeRequest] = field(default_factory=list)
    connect_payloads: list[Any] = field(default_factory=list)
    events: list[tuple[str, list[Any]]] = field(default_factory=list)
    pings_sent: int = 0
    pongs: int = 0
    violations: list[str] = field(default_factory=list)
    sockets_opened: int = 0
    sockets_closed: int = 0
    submitted: trio.Event = field(default_factory=trio.Event)
    inflight: InFlight = field(default_factory=InFlight)  # GraphQL requests still being answered
    _closed_events: list[trio.Event] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.graphql_url

    @property
    def actions(self) -> list[str]:
        return [name for name, _ in self.events]

    def options(self, **extra: Any) -> dict[str, Any]:
        """Module options that point a `kajiwoto` module at this fake."""
        return {
            "graphql_url": self.graphql_url,
            "socket_url": self.socket_url,
            "username": self.username,
            "password": self.password,
            "room_id": self.room_id,
            **extra,
        }

    def event(self, action: str) -> list[Any]:
        """The arguments of the first event named ``action`` the client sent."""
        for name, args in self.events:
            if name == action:
                return args
        raise KeyError(f"the client never sent {action!r}; it sent {self.actions}")

    async def wait_all_sockets_closed(self) -> None:
        for closed in list(self._closed_events):
            await closed.wait()


def _graphql_args(query: str) -> dict[str, str]:
    return {k: json.loads(v) for k, v in re.findall(r'(\w+)\s*:\s*("(?:[^"\\]|\\.)*")', query)}


@asynccontextmanager
async def fake_kajiwoto(
    *,
    reply: str = "Hello, friend! How was your day?",
    mood: str = "HAPPY",
    state: str = "DEFAULT",
    fault: str | None = None,
    fault_at: str = "chatSubmit",
    reply_delay: float = 0.0,
    username: str = "player-one",
    password: str = "pw-s3cret-kaji",
    auth_token: str = "kaji-token-7f3a9c",
    user_id: str = "u-1234",
    room_id: str = "room-42",
    room_version: int = 1675538034,
    error_message: str | None = None,
    fault_times: int = 1,
    retry_after: float = 0.05,
) -> AsyncIterator[FakeKajiwoto]:
    if fault not in FAULTS:
        raise ValueError(f"unknown fault {fault!r}; one of {FAULTS}")
    if fault_at not in FLOW:
        raise ValueError(f"fault_at must be one of {FLOW}")
    fake: FakeKajiwoto
    faults_left = fault_times

    # ------------------------------------------------------------------ GraphQL
    async def graphql(req: FakeRequest, res: Responder) -> None:
        nonlocal faults_left
        fake.graphql_requests.append(req)
        if req.method != "POST" or req.path != "/graphql":
            await res.send_json(404, {"errors": [{"message": f"no route {req.method} {req.path}"}]})
            return
        if fault == "graphql_500":
            await res.send_json(500, {"errors": [{"message": "Internal server error"}]})
            return
        if fault == "graphql_429" and faults_left > 0:
            faults_left -= 1
            await res.send_json(429, {"errors": [{"message": "Too many login attempts"}]}, {"retry-after": f"{retry_after:g}"})
            return
        query = str(req.json().get("query", ""))
        op = re.search(r"\b(loginWithToken|login)\s*\(", query)
        args = _graphql_args(query)
        if op is None:
            await res.send_json(200, {"errors": [{"message": "Unknown operation"}], "data": None})
            return
        if "deviceType: WEB" not in query:
            fake.violations.append("login without deviceType: WEB")
        if op.group(1) == "loginWithToken":
            ok = args.get("authToken") == auth_token and req.headers.get("auth_token") == auth_token
            problem = "Invalid auth token"
        else:
            ok = args.get("usernameOrEmail") == username and args.get("password") == password
            problem = "Incorrect username or password"
        if fault == "login_error" or not ok:
            message = error_message or problem
            await res.send_json(200, {"errors": [{"message": message, "path": [op.group(1)]}], "data": None})
            return
        user = {"id": user_id, "username": username, "displayName": "Player One", "profile": {"photoUri": None}}
        await res.send_json(200, {"data": {op.group(1): {"authToken": auth_token, "user": user}}})

    # ------------------------------------------------------------------ socket
    def check_common(action: str, args: list[Any]) -> None:
        if len(args) < 2:
            fake.violations.append(f"{action}: expected userData, payload, secret; got {args!r}")
            return
        user, secret = args[0], args[-1]
        if not isinstance(user, dict) or user.get("userId") != user_id or user.get("username") != username:
            fake.violations.append(f"{action}: userData does not name the logged-in user: {user!r}")
        elif not isinstance(user.get("time"), int) or user["time"] % 100 not in (0, 30):
            fake.violations.append(f"{action}: userData.time is not HHMM on the half hour: {user.get('time')!r}")
        stamp = secret.get("timestamp") if isinstance(secret, dict) else None
        if not isinstance(stamp, str) or not stamp.isdigit():
            fake.violations.append(f"{action}: no secret timestamp: {secret!r}")
            return
        if abs(int(stamp) - time.time() * 1000) > 120_000:
            fake.violations.append(f"{action}: secret timestamp is not current: {stamp}")
        if secret.get("secret") != expected_secret(stamp):
            fake.violations.append(f"{action}: wrong secret {secret.get('secret')!r} for {stamp}")

    def activity(data: dict[str, Any]) -> str:
        return socketio.encode_event("chatActivity", [{"data": {"chatRoomId": room_id, **data}}])

    async def drain(ws: ServerConnection) -> None:
        """Hang: keep reading (so a close is noticed) but never answer."""
        async for _ in ws:
            pass

    async def conversation(ws: ServerConnection, sock_sid: str) -> None:
        assert ws.request is not None
        target = urlsplit(ws.request.path)
        query = parse_qs(target.query)
        if not target.path.startswith("/socket.io/") or query.get("EIO") != ["4"] or query.get("transport") != [
            "websocket"
        ]:
            fake.violations.append(f"socket opened at {ws.request.path!r}, not /socket.io/?EIO=4&transport=websocket")
        handshake = {"sid": "eio-" + sock_sid, "upgrades": [], "pingInterval": 25000, "pingTimeout": 20000}
        await ws.send(socketio.encode_open({**handshake, "maxPayload": 1000000}))

        first = socketio.decode(str(await ws.recv()))
        if first.socket is not SocketType.CONNECT:
            fake.violations.append(f"first client packet was not a CONNECT: {first!r}")
            return
        fake.connect_payloads.append(first.data)
        api_key = (first.data or {}).get("api_key") if isinstance(first.data, dict) else None
        if fault == "connect_refused" or api_key != auth_token:
            await ws.send(socketio.encode_connect_error(error_message or "Not authorized"))
            return
        await ws.send(socketio.encode_connect({"sid": sock_sid}))
        await ws.send(socketio.encode_ping())
        fake.pings_sent += 1

        step = 0
        sent_text: str | None = None
        async for frame in ws:
            packet = socketio.decode(str(frame))
            if packet.engine is EngineType.PONG:
                fake.pongs += 1
                continue
            action = packet.event_name
            if action is None:
                fake.violations.append(f"unexpected client packet {frame!r}")
                continue
            args = packet.event_args
            fake.events.append((action, args))
            check_common(action, args)
            if step >= len(FLOW) or action != FLOW[step]:
                fake.violations.append(f"event {action!r} out of order (expected {FLOW[step:step + 1]})")
            step += 1
            payload = args[1] if len(args) > 1 and isinstance(args[1], dict) else {}

            if action == "chatSubmit":
                fake.submitted.set()
            if fault in ("hang", "drop", "garbage") and action == fault_at:
                if fault == "drop":
                    await trio.aclose_forcefully(ws.stream)
                    return
                if fault == "garbage":
                    await ws.send(GARBAGE_FRAME)
                await drain(ws)
                return

            if action == "login":
                status = {**args[0], "status": "ONLINE"} if isinstance(args[0], dict) else {}
                await ws.send(socketio.encode_event("userStatus", [{"data": status}]))
            elif action == "subscribe":
                if payload.get("chatRoomIds") != [room_id]:
                    fake.violations.append(f"subscribe to {payload.get('chatRoomIds')!r}, not [{room_id!r}]")
                channel = {"v": room_version, "list": [{"id": user_id, "socketIds": [sock_sid]}]}
                pet = {"id": "pet-1", "name": "Wanda", "mood": "DEFAULT", "state": "DEFAULT"}
                await ws.send(activity({"action": "join-room", "petData": pet, "channel": channel}))
            elif action == "chatEnter":
                if payload.get("chatRoomId") != room_id or payload.get("isPreviewRoom") is not False:
                    fake.violations.append(f"chatEnter payload wrong: {payload!r}")
            elif action == "chatSend":
                message = payload.get("message") or {}
                sent_text = message.get("message")
                if payload.get("roomVersionNumber") != room_version:
                    fake.violations.append(f"chatSend roomVersionNumber {payload.get('roomVersionNumber')!r}")
                if payload.get("roomSocketIds") != [sock_sid]:
                    fake.violations.append(f"chatSend roomSocketIds {payload.get('roomSocketIds')!r}")
                if message.get("chatRoomId") != room_id or not str(message.get("id", "")).startswith(room_id + ":"):
                    fake.violations.append(f"chatSend message ids wrong: {message!r}")
                # The room echoes the player's line to everyone in it, the client included.
                await ws.send(activity({"action": "message", "message": {**message, "createdAt": 1}}))
            elif action == "chatSubmit":
                if payload.get("messages") != [sent_text] or payload.get("chatRoomId") != room_id:
                    fake.violations.append(f"chatSubmit does not carry the sent line: {payload!r}")
                await ws.send(activity({"action": "activity", "activity": {"type": "TYPING", "userId": "pet-1"}}))
                await ws.send(socketio.encode_ping())
                fake.pings_sent += 1
                await trio.sleep(reply_delay)
                pet_message = {
                    "id": f"{room_id}:{int(time.time() * 1000)}",
                    "clientId": "c-1",
                    "chatRoomId": room_id,
                    "kajiwotoPetId": "pet-1",
                    "message": reply,
                    "attachmentUri": None,
                    "userId": None,
                }
                pet = {"id": "pet-1", "name": "Wanda", "mood": mood, "state": state}
                await ws.send(activity({"action": "petMessage", "message": pet_message, "petData": pet}))

    async def socket_handler(ws: ServerConnection) -> None:
        closed = trio.Event()
        fake._closed_events.append(closed)
        fake.sockets_opened += 1
        try:
            await conversation(ws, f"sock-{fake.sockets_opened}")
        except ConnectionClosed:
            pass
        finally:
            fake.sockets_closed += 1
            closed.set()

    inflight = InFlight()
    async with serve_http(inflight.wrap(graphql)) as http_server, serve_ws(socket_handler) as ws_url:
        fake = FakeKajiwoto(
            graphql_url=f"{http_server.url}/graphql",
            socket_url=f"{ws_url}/socket.io/",
            username=username,
            password=password,
            auth_token=auth_token,
            user_id=user_id,
            room_id=room_id,
            inflight=inflight,
        )
        yield fake
