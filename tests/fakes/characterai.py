"""A fake Character AI: the REST user endpoint and the neo chat socket, on 127.0.0.1.

It speaks the web app's wire format (see providers.md): ``GET /chat/user/`` with
``authorization: Token <t>``; a WebSocket at ``/ws/`` that only accepts the cookie
``HTTP_AUTHORIZATION="Token <t>"``; JSON frames ``create_chat`` / ``create_and_generate_turn``
answered with ``add_turn`` / ``update_turn`` whose ``raw_content`` is cumulative. It first
echoes the player's own turn (``author.is_human``), as the service does, and slips in a
frame for some other request, which a client must ignore. Mistakes it spots in what the
client sends go to ``violations``.

    async with fake_characterai(reply="Well met.", updates=3) as cai:
        llm = characterai.create(ModuleSpec("c", "llm", "characterai", cai.options()))

Fault modes (``fault=``): ``"bad_token"`` (refuse even the right token: REST answers 401
echoing the header back, the socket handshake 403; a wrong token is always refused),
``"ws_forbidden"`` (REST accepts the token, the socket handshake answers 403),
``"neo_error"`` (answer the turn with
``{"command": "neo_error", "comment": fault_comment}``), ``"hang"`` (echo the player's turn,
then silence), ``"drop"`` (send the first update, then cut the TCP connection),
``"garbage"`` (echo the player's turn, then a frame that is not JSON), ``"status"`` (REST
answers ``error_status`` with ``{"detail": error_message}``), ``"rate_limit"`` (REST answers
429 with ``Retry-After: retry_after`` to the first ``fault_times`` requests).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import trio
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.trio.server import ServerConnection

from tests.fakes.http_server import FakeRequest, Responder, serve_http
from tests.fakes.inflight import InFlight
from tests.fakes.ws_server import serve_ws

FAULTS = (None, "bad_token", "ws_forbidden", "neo_error", "hang", "drop", "garbage", "status", "rate_limit")
#: Sent by the "garbage" fault: what a misbehaving proxy might slip into the socket.
GARBAGE_FRAME = "<html><body>502 Bad Gateway</body></html>"


def cumulative_snapshots(reply: str, updates: int) -> list[str]:
    """``reply`` cut at word boundaries into ``updates`` growing prefixes (the last is whole)."""
    words = reply.split(" ")
    updates = max(1, min(updates, len(words)))
    cuts = [round(len(words) * (i + 1) / updates) for i in range(updates)]
    return [" ".join(words[:cut]) for cut in cuts]


@dataclass
class FakeCharacterAI:
    rest_url: str
    ws_url: str
    token: str
    user_id: int
    character_id: str
    rest_requests: list[FakeRequest] = field(default_factory=list)
    handshake_headers: list[Headers] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)
    chats: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    sockets_opened: int = 0
    sockets_closed: int = 0
    generating: trio.Event = field(default_factory=trio.Event)
    inflight: InFlight = field(default_factory=InFlight)  # REST requests still being answered
    _closed_events: list[trio.Event] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.rest_url

    @property
    def commands(self) -> list[str]:
        return [str(m.get("command")) for m in self.received]

    def options(self, **extra: Any) -> dict[str, Any]:
        """Module options that point a `characterai` module at this fake."""
        return {
            "rest_url": self.rest_url,
            "ws_url": self.ws_url,
            "token": self.token,
            "character_id": self.character_id,
            **extra,
        }

    async def wait_all_sockets_closed(self) -> None:
        for closed in list(self._closed_events):
            await closed.wait()


def _turn(chat_id: str, turn_id: str, author: dict[str, Any], content: str, final: bool) -> dict[str, Any]:
    candidate_id = f"cand-{turn_id}"
    return {
        "turn_key": {"chat_id": chat_id, "turn_id": turn_id},
        "author": author,
        "candidates": [{"candidate_id": candidate_id, "raw_content": content, "is_final": final}],
        "primary_candidate_id": candidate_id,
    }


@asynccontextmanager
async def fake_characterai(
    *,
    reply: str = "Well met, traveller. The road north is closed tonight.",
    updates: int = 4,
    token_delay: float = 0.0,
    greeting: str = "Greetings! I am the innkeeper.",
    fault: str | None = None,
    fault_comment: str = "Character not found",
    token: str = "cai-token-0a1b2c3d4e",
    user_id: int = 424242,
    character_id: str = "char-innkeeper",
    existing_chats: tuple[str, ...] = (),
    error_status: int = 500,
    error_message: str = "Internal Server Error",
    fault_times: int = 1,
    retry_after: float = 0.05,
) -> AsyncIterator[FakeCharacterAI]:
    if fault not in FAULTS:
        raise ValueError(f"unknown fault {fault!r}; one of {FAULTS}")
    fake: FakeCharacterAI
    character = {"author_id": character_id, "is_human": False, "name": "Innkeeper"}
    faults_left = fault_times

    # ------------------------------------------------------------------ REST
    async def rest(req: FakeRequest, res: Responder) -> None:
        nonlocal faults_left
        fake.rest_requests.append(req)
        if req.method != "GET" or req.path != "/chat/user/":
            await res.send_json(404, {"detail": f"Not found: {req.path}"})
            return
        if fault == "status":
            await res.send_json(error_status, {"detail": error_message})
            return
        if fault == "rate_limit" and faults_left > 0:
            faults_left -= 1
            await res.send_json(429, {"detail": "Too many requests"}, {"retry-after": f"{retry_after:g}"})
            return
        if fault == "bad_token" or req.headers.get("authorization") != f"Token {token}":
            # The service's words, with the offending header echoed back: clients must scrub.
            given = req.headers.get("authorization", "")
            await res.send_json(401, {"detail": f"Invalid token. ({given})"})
            return
        await res.send_json(200, {"user": {"user": {"id": user_id, "username": "player"}, "is_human": True}})

    # ------------------------------------------------------------------ neo socket
    def check_cookie(conn: ServerConnection, request: Request) -> Response | None:
        fake.handshake_headers.append(request.headers)
        if request.path != "/ws/":
            return conn.respond(404, "no such socket\n")
        if request.headers.get("Cookie") != f'HTTP_AUTHORIZATION="Token {token}"' or fault in ("bad_token", "ws_forbidden"):
            return conn.respond(403, "Forbidden\n")
        return None

    async def send(ws: ServerConnection, obj: dict[str, Any]) -> None:
        await ws.send(json.dumps(obj))

    async def create_chat(ws: ServerConnection, msg: dict[str, Any]) -> None:
        payload = msg.get("payload") or {}
        chat = payload.get("chat") or {}
        rid = msg.get("request_id")
        want = {"creator_id": str(user_id), "character_id": character_id, "visibility": "VISIBILITY_PRIVATE"}
        for k, v in want.items():
            if chat.get(k) != v:
                fake.violations.append(f"create_chat {k}={chat.get(k)!r}, expected {v!r}")
        if chat.get("type") != "TYPE_ONE_ON_ONE" or not chat.get("chat_id"):
            fake.violations.append(f"create_chat chat is incomplete: {chat!r}")
        chat_id = str(chat.get("chat_id"))
        fake.chats.append(chat_id)
        await send(ws, {"command": "create_chat_response", "request_id": rid, "chat": {**chat, "name": "Chat"}})
        if payload.get("with_greeting"):
            turn = _turn(chat_id, str(uuid.uuid4()), character, greeting, True)
            await send(ws, {"command": "add_turn", "request_id": rid, "turn": turn})

    async def generate(ws: ServerConnection, msg: dict[str, Any]) -> None:
        payload = msg.get("payload") or {}
        turn = payload.get("turn") or {}
        rid = msg.get("request_id")
        author = turn.get("author") or {}
        key = turn.get("turn_key") or {}
        chat_id = key.get("chat_id")
        candidates = turn.get("candidates") or [{}]
        if payload.get("character_id") != character_id:
            fake.violations.append(f"turn for character {payload.get('character_id')!r}")
        if author.get("is_human") is not True or author.get("author_id") != str(user_id):
            fake.violations.append(f"turn author is not the user: {author!r}")
        if chat_id not in fake.chats:
            fake.violations.append(f"turn for unknown chat {chat_id!r}")
        if not rid or not key.get("turn_id") or turn.get("primary_candidate_id") != candidates[0].get("candidate_id"):
            fake.violations.append(f"turn ids incomplete: {msg!r}")
        fake.generating.set()
        if fault == "neo_error":
            await send(ws, {"command": "neo_error", "request_id": rid, "comment": fault_comment})
            return
        # The service echoes the player's turn first, then streams the character's.
        echo = {**turn, "candidates": [{**candidates[0], "is_final": True}]}
        await send(ws, {"command": "add_turn", "request_id": rid, "turn": echo})
        # Another tab's traffic on the same socket: not ours to read.
        stray = _turn(str(chat_id), "t-other", character, "NOT FOR YOU", True)
        await send(ws, {"command": "add_turn", "request_id": "someone-else", "turn": stray})
        if fault == "hang":
            return
        if fault == "garbage":
            await ws.send(GARBAGE_FRAME)
            return
        reply_turn = str(uuid.uuid4())
        snapshots = cumulative_snapshots(reply, updates)
        for i, snapshot in enumerate(snapshots):
            if i:
                await trio.sleep(token_delay)
            final = i == len(snapshots) - 1
            command = "add_turn" if i == 0 else "update_turn"
            await send(ws, {"command": command, "request_id": rid, "turn": _turn(str(chat_id), reply_turn, character, snapshot, final)})
            if fault == "drop":
                await trio.aclose_forcefully(ws.stream)
                return

    async def conversation(ws: ServerConnection) -> None:
        async for frame in ws:
            try:
                msg = json.loads(frame)
            except ValueError:
                fake.violations.append(f"frame is not JSON: {frame!r}")
                continue
            fake.received.append(msg)
            command = msg.get("command")
            if command == "create_chat":
                await create_chat(ws, msg)
            elif command == "create_and_generate_turn":
                await generate(ws, msg)
            else:
                fake.violations.append(f"unexpected command {command!r}")

    async def socket_handler(ws: ServerConnection) -> None:
        closed = trio.Event()
        fake._closed_events.append(closed)
        fake.sockets_opened += 1
        try:
            await conversation(ws)
        except (ConnectionClosed, trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            fake.sockets_closed += 1
            closed.set()

    inflight = InFlight()
    async with serve_http(inflight.wrap(rest)) as http_server, serve_ws(socket_handler, process_request=check_cookie) as ws_url:
        fake = FakeCharacterAI(
            rest_url=http_server.url,
            ws_url=ws_url,
            token=token,
            user_id=user_id,
            character_id=character_id,
            chats=list(existing_chats),
            inflight=inflight,
        )
        yield fake
