"""`kajiwoto`: a Kajiwoto chat room as the character's LLM. EXPERIMENTAL.

Kajiwoto has no public API. This module speaks what its web app speaks, as recorded by
the community Go SDK (RuntimeRacer/kajiwoto-clientsdk-golang, 2023): it may break whenever
Kajiwoto changes its site, and using it may be against their terms. Opt in knowingly.

The service keeps the chat history itself, so each turn sends only the player's new line.
One turn is one socket, so a cancelled turn closes everything it opened:

    GraphQL  login / loginWithToken            -> authToken + user (cached on the module)
    socket   0{open}  40{"api_key": token} -> 40{"sid"}   (or 44{"message"}: refused)
             42["login", userData, {"status":"ONLINE"}, secret]          -> userStatus
             42["subscribe", userData, {"chatRoomIds":[room]}, secret]   -> chatActivity join-room
             42["chatEnter", ...]  42["chatSend", ...]  42["chatSubmit", ...]
                                   -> chatActivity {"action": "petMessage", message, petData}

Engine.IO pings (``2``) are answered (``3``) whenever we wait. The reply arrives whole;
it is yielded as word-sized deltas so the rest of the pipeline treats it like any stream.
The Kaji's mood from ``petData`` is kept in ``last_mood`` / ``last_pet_data``.

Config (`[modules.NAME]`, provider = "kajiwoto"): `room_id` (required), `kaji_id`,
`username` + `password` / `password_env`, or `auth_token` / `auth_token_env`; endpoints
`graphql_url`, `socket_url`, `origin`; `timeout` (s per wait, default 30),
`connect_timeout` (s, default 10); `max_retries` (default 2) and `max_retry_after` (s,
default `timeout`) bound the retries of a login answered 429/503, as for every HTTP module.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import trio
from websockets.trio.client import ClientConnection

from bridge.providers import http
from bridge.providers.base import ConfigError, LLMRequest, Mood, ProviderError
from bridge.providers.llm import socketio
from bridge.providers.llm._common import empty_reply
from bridge.providers.llm.socketio import EngineType, Packet, SocketType
from bridge.providers.llm.ws_session import (
    deadline_error,
    open_websocket,
    recv_text,
    scrubbed_errors,
    send_text,
)
from bridge.providers.registry import ModuleSpec

PROVIDER = "Kajiwoto"
DEFAULT_GRAPHQL_URL = "https://server.chiefhappiness.co/graphql"
DEFAULT_SOCKET_URL = "wss://socket.chiefhappiness.co/socket.io/"
DEFAULT_TIMEOUT_S = 30.0
RETRY_KEYS = ("max_retries", "max_retry_after")

_LOGIN_FIELDS = "authToken user { id username displayName profile { photoUri } }"

# Kajiwoto's moods are free-form upper-case words; these are the ones with an obvious
# counterpart among the bridge's emotions. Anything else reads as neutral.
_MOODS: dict[str, str] = {
    "DEFAULT": "neutral",
    "NEUTRAL": "neutral",
    "HAPPY": "happy",
    "EXCITED": "happy",
    "JOYFUL": "happy",
    "SAD": "sad",
    "ANGRY": "angry",
    "MAD": "angry",
    "SURPRISED": "surprised",
    "SHOCKED": "surprised",
    "SCARED": "afraid",
    "AFRAID": "afraid",
    "DISGUSTED": "disgusted",
}

T = TypeVar("T")


# --------------------------------------------------------------------------- pure helpers


def message_secret(ms: int) -> dict[str, str]:
    """The proof of freshness Kajiwoto wants as the last argument of every event.

    The web app multiplies the millisecond timestamp by a two-digit number built from the
    timestamp's own digits (0-based): if digit [8] is odd, int(digit[7] + "1"), otherwise
    int(digit[8] + "1"); the product is sent as base64 of its decimal text.
    """
    stamp = str(ms)
    if len(stamp) < 9:
        raise ValueError(f"a millisecond Unix timestamp has at least 9 digits, got {stamp!r}")
    d7, d8 = int(stamp[7]), int(stamp[8])
    multiplier = int(f"{d7 if d8 % 2 else d8}1")
    secret = base64.b64encode(str(ms * multiplier).encode()).decode()
    return {"timestamp": stamp, "secret": secret}


def local_user_time(now: datetime | None = None) -> int:
    """The player's wall-clock time as HHMM, floored to the half hour (2047 -> 2030)."""
    now = now or datetime.now()
    return now.hour * 100 + (30 if now.minute >= 30 else 0)


def split_words(text: str) -> list[str]:
    """Word-sized pieces that join back to exactly ``text``.

    Whitespace rides on the word before it; leading whitespace on the first word.
    """
    pieces = [piece for piece in re.split(r"(?<=\s)(?=\S)", text) if piece]
    if len(pieces) > 1 and not pieces[0].strip():
        pieces[1] = pieces[0] + pieces[1]
        del pieces[0]
    return pieces


def mood_of(pet_data: Mapping[str, Any] | None) -> Mood | None:
    """Read the Kaji's mood word as one of the bridge's emotions."""
    if not pet_data or not pet_data.get("mood"):
        return None
    emotion = _MOODS.get(str(pet_data["mood"]).upper(), "neutral")
    return Mood(emotion, 0.0 if emotion == "neutral" else 0.7)


def _graphql_string(value: str) -> str:
    # JSON string syntax is valid GraphQL string syntax; inlining avoids guessing the
    # server's scalar type names for variables.
    return json.dumps(value, ensure_ascii=True)


def socket_endpoint(base: str) -> str:
    """``base`` with Engine.IO v4's raw-websocket query (``?EIO=4&transport=websocket``)."""
    parts = urlsplit(base)
    query = dict(parse_qsl(parts.query))
    query.update({"EIO": "4", "transport": "websocket"})
    return urlunsplit((parts.scheme, parts.netloc, parts.path or "/socket.io/", urlencode(query), ""))


# --------------------------------------------------------------------------- account


@dataclass(frozen=True, slots=True)
class Account:
    auth_token: str
    user_id: str
    username: str
    display_name: str
    photo_uri: str | None

    def user_data(self) -> dict[str, Any]:
        """The ``userData`` map every event starts with."""
        return {
            "displayName": self.display_name,
            "guest": False,
            "profilePhotoUri": self.photo_uri,
            "time": local_user_time(),
            "userId": self.user_id,
            "username": self.username,
        }


def _account_from(data: Any, fallback_token: str | None) -> Account:
    if not isinstance(data, dict):
        raise ProviderError("backend_error", f"{PROVIDER} login answered without a result")
    login = data.get("login") or data.get("loginWithToken")
    if not isinstance(login, dict):
        raise ProviderError("backend_error", f"{PROVIDER} login answered without a result")
    user = login.get("user") or {}
    token = login.get("authToken") or fallback_token
    if not token or not user.get("id"):
        raise ProviderError("backend_error", f"{PROVIDER} login returned no token or user id")
    profile = user.get("profile") or {}
    return Account(
        auth_token=str(token),
        user_id=str(user["id"]),
        username=str(user.get("username") or ""),
        display_name=str(user.get("displayName") or user.get("username") or ""),
        photo_uri=profile.get("photoUri"),
    )


# --------------------------------------------------------------------------- room session


class _Room:
    """One socket's conversation with one chat room, from handshake to the Kaji's reply."""

    def __init__(self, ws: ClientConnection, account: Account, room_id: str, kaji_id: str | None, timeout: float) -> None:
        self.ws = ws
        self.account = account
        self.room_id = room_id
        self.kaji_id = kaji_id
        self.timeout = timeout
        self.sid = ""
        self.room_version: Any = None
        self.refused = False  # the server turned our token down at connect

    async def _packet(self, during: str) -> Packet:
        """The next packet that needs attention; pings are answered on the way."""
        while True:
            frame = await recv_text(self.ws, PROVIDER, during)
            try:
                packet = socketio.decode(frame)
            except socketio.FramingError as exc:
                raise ProviderError("backend_error", f"{PROVIDER} sent a frame we cannot read: {exc}") from None
            if packet.engine is EngineType.PING:
                await send_text(self.ws, PROVIDER, socketio.encode_pong(packet.data), during)
                continue
            if packet.engine is EngineType.CLOSE:
                raise ProviderError("backend_error", f"{PROVIDER} closed the session {during}")
            if packet.engine is EngineType.MESSAGE and packet.socket is SocketType.DISCONNECT:
                raise ProviderError("backend_error", f"{PROVIDER} disconnected us {during}")
            if packet.engine in (EngineType.NOOP, EngineType.PONG):
                continue
            return packet

    async def _expect(self, what: str, match: Callable[[Packet], T | None]) -> T:
        """Read until ``match`` returns something; a bounded wait, pings do not extend it."""
        with trio.move_on_after(self.timeout):
            while True:
                packet = await self._packet(f"while waiting for {what}")
                found = match(packet)
                if found is not None:
                    return found
        raise deadline_error(PROVIDER, f"waiting for {what}", self.timeout)

    async def _emit(self, action: str, payload: Any) -> None:
        secret = message_secret(time.time_ns() // 1_000_000)
        frame = socketio.encode_event(action, [self.account.user_data(), payload, secret])
        await send_text(self.ws, PROVIDER, frame, f"after {action}")

    def _activity(self, packet: Packet, action: str) -> dict[str, Any] | None:
        if packet.event_name != "chatActivity" or not packet.event_args:
            return None
        first = packet.event_args[0]
        data = first.get("data") if isinstance(first, dict) else None
        if not isinstance(data, dict) or data.get("action") != action:
            return None
        if data.get("chatRoomId") not in (None, self.room_id):
            return None
        return data

    async def open(self) -> None:
        """Engine.IO open, Socket.IO connect with the token, then login and join the room."""

        def opened(p: Packet) -> dict[str, Any] | None:
            return p.data if p.engine is EngineType.OPEN else None

        await self._expect("the Engine.IO open packet", opened)
        await send_text(self.ws, PROVIDER, socketio.encode_connect({"api_key": self.account.auth_token}), "on connect")

        def connected(p: Packet) -> str | None:
            if p.socket is SocketType.CONNECT_ERROR:
                self.refused = True
                raise ProviderError(
                    "backend_error", f"{PROVIDER} refused the socket connection: {socketio.connect_error_message(p)}"
                )
            if p.socket is SocketType.CONNECT and p.namespace == "/":
                return str((p.data or {}).get("sid") or "?")
            return None

        self.sid = await self._expect("the socket connect answer", connected)

        await self._emit("login", {"status": "ONLINE"})

        def online(p: Packet) -> bool | None:
            if p.event_name != "userStatus" or not p.event_args or not isinstance(p.event_args[0], dict):
                return None
            data = p.event_args[0].get("data") or {}
            return True if data.get("userId") in (None, self.account.user_id) else None

        await self._expect("the login status", online)

        await self._emit("subscribe", {"chatRoomIds": [self.room_id], "kajiId": self.kaji_id})
        joined = await self._expect("the room join", lambda p: self._activity(p, "join-room"))
        channel = joined.get("channel") or {}
        self.room_version = channel.get("v")
        await self._emit("chatEnter", {"chatRoomId": self.room_id, "lastMessages": [], "isPreviewRoom": False})

    async def say(self, text: str) -> None:
        ms = time.time_ns() // 1_000_000
        message = {
            "id": f"{self.room_id}:{ms}",
            "chatRoomId": self.room_id,
            "userId": self.account.user_id,
            "message": text,
            "attachmentUri": None,
        }
        await self._emit(
            "chatSend", {"message": message, "roomVersionNumber": self.room_version, "roomSocketIds": [self.sid]}
        )
        await self._emit(
            "chatSubmit",
            {
                "chatRoomId": self.room_id,
                "messages": [text],
                "role": {},
                "emoji": None,
                "emojiSceneId": None,
                "platform": "web",
            },
        )

    async def reply(self) -> dict[str, Any]:
        """The ``petMessage`` activity; our own echoed line and typing notices pass by."""
        return await self._expect("the reply", lambda p: self._activity(p, "petMessage"))


# --------------------------------------------------------------------------- provider


class KajiwotoLLM:
    """An LLM whose every reply comes from a Kajiwoto room."""

    def __init__(
        self,
        *,
        room_id: str,
        kaji_id: str | None = None,
        username: str | None = None,
        password: str | None = None,
        auth_token: str | None = None,
        graphql_url: str = DEFAULT_GRAPHQL_URL,
        socket_url: str = DEFAULT_SOCKET_URL,
        origin: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        connect_timeout: float = http.DEFAULT_CONNECT_TIMEOUT_S,
        retry_options: Mapping[str, Any] | None = None,
    ) -> None:
        if not auth_token and not (username and password):
            raise ConfigError("kajiwoto needs `auth_token` or both `username` and `password`")
        self.name = "kajiwoto"
        self.room_id = room_id
        self.kaji_id = kaji_id
        self._username = username
        self._password = password
        self._auth_token = auth_token
        self.graphql_url = graphql_url
        self.socket_url = socket_endpoint(socket_url)
        self.origin = origin
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        # For `http.with_retries`; the wait cap defaults to `timeout`, so a rate limit never
        # stalls a turn longer than a silent backend would.
        self.retry_options: dict[str, Any] = {"max_retry_after": timeout, **dict(retry_options or {})}
        self._http: httpx.AsyncClient | None = None
        self._account: Account | None = None
        self._login_lock = trio.Lock()
        self.last_mood: Mood | None = None
        self.last_pet_data: dict[str, Any] | None = None

    def _secrets(self) -> list[str | None]:
        token = self._account.auth_token if self._account else None
        return [self._password, self._auth_token, token]

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=httpx.Timeout(self.timeout, connect=self.connect_timeout))
        return self._http

    async def _login(self) -> Account:
        """Log in once and reuse the account for later turns (re-login after a refusal)."""
        async with self._login_lock:
            if self._account is not None:
                return self._account
            headers = {"content-type": "application/json"}
            if self._auth_token:
                headers["auth_token"] = self._auth_token
                query = (
                    f"mutation {{ loginWithToken(authToken: {_graphql_string(self._auth_token)}, "
                    f'action: "", deviceType: WEB) {{ {_LOGIN_FIELDS} }} }}'
                )
            else:
                assert self._username and self._password
                query = (
                    f"mutation {{ login(usernameOrEmail: {_graphql_string(self._username)}, "
                    f"password: {_graphql_string(self._password)}, deviceType: WEB) {{ {_LOGIN_FIELDS} }} }}"
                )

            async def attempt() -> httpx.Response:
                try:
                    response = await self._client().post(self.graphql_url, json={"query": query}, headers=headers)
                except httpx.HTTPError as exc:
                    raise http.transport_error(PROVIDER, exc) from None
                http.raise_for_status(PROVIDER, response, response.content)
                return response

            response = await http.with_retries(PROVIDER, attempt, self.retry_options)
            try:
                body = response.json()
            except ValueError:
                raise ProviderError("backend_error", f"{PROVIDER} login answered with non-JSON") from None
            errors = body.get("errors") if isinstance(body, dict) else None
            if errors:
                message = http.error_message_from_body(json.dumps({"errors": errors}))
                raise ProviderError("backend_error", f"{PROVIDER} login failed: {message}")
            self._account = _account_from(body.get("data"), self._auth_token)
            return self._account

    @asynccontextmanager
    async def stream(self, request: LLMRequest) -> AsyncIterator[AsyncIterator[str]]:
        async with scrubbed_errors(self._secrets()):
            account = await self._login()
            async with scrubbed_errors([account.auth_token]):
                async with open_websocket(
                    PROVIDER, self.socket_url, connect_timeout=self.connect_timeout, origin=self.origin
                ) as ws:
                    room = _Room(ws, account, self.room_id, self.kaji_id, self.timeout)
                    try:
                        await room.open()
                    except ProviderError:
                        if room.refused:
                            self._account = None  # the token may have expired: log in anew next turn
                        raise
                    await room.say(request.new_message)
                    deltas = self._deltas(room)
                    try:
                        yield deltas
                    finally:
                        await deltas.aclose()

    async def _deltas(self, room: _Room) -> AsyncIterator[str]:
        activity = await room.reply()
        pet = activity.get("petData")
        self.last_pet_data = dict(pet) if isinstance(pet, dict) else None
        self.last_mood = mood_of(self.last_pet_data)
        message = activity.get("message") or {}
        text = message.get("message") if isinstance(message, dict) else None
        if not isinstance(text, str) or not text.strip():
            raise empty_reply(PROVIDER, "petMessage without text")
        for piece in split_words(text):
            yield piece

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None


def create(spec: ModuleSpec) -> KajiwotoLLM:
    room_id = spec.option("room_id")
    if not room_id:
        raise ConfigError(f"module {spec.name!r} (kajiwoto) needs `room_id`: the chat room of your Kaji")
    auth_token = spec.secret("auth_token", required=False)
    username = spec.option("username")
    password = spec.secret("password", required=False) if username else None
    if not auth_token and not (username and password):
        raise ConfigError(
            f"module {spec.name!r} (kajiwoto) needs `auth_token` / `auth_token_env`, "
            "or `username` with `password` / `password_env`"
        )
    return KajiwotoLLM(
        room_id=str(room_id),
        kaji_id=spec.option("kaji_id"),
        username=username,
        password=password,
        auth_token=auth_token,
        graphql_url=spec.option("graphql_url", DEFAULT_GRAPHQL_URL),
        socket_url=spec.option("socket_url", DEFAULT_SOCKET_URL),
        origin=spec.option("origin"),
        timeout=float(spec.option("timeout", DEFAULT_TIMEOUT_S)),
        connect_timeout=float(spec.option("connect_timeout", http.DEFAULT_CONNECT_TIMEOUT_S)),
        retry_options={k: spec.options[k] for k in RETRY_KEYS if k in spec.options},
    )
