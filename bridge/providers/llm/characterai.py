"""`characterai`: a Character AI character as the LLM. EXPERIMENTAL.

Character AI has no public API. This module speaks what its web app speaks, as recorded by
the most-used community client (Xtr4F/PyCharacterAI, 2025-08): it may break whenever the
site changes, and using it may be against their terms. Opt in knowingly.

The service keeps the chat history, so each turn sends only the player's new line:

    REST  GET {rest_url}/chat/user/   (authorization: Token <t>)   -> our user id (cached)
    WS    {ws_url}/ws/                (cookie HTTP_AUTHORIZATION="Token <t>"), JSON frames:
          create_chat  -> create_chat_response (+ greeting add_turn)   once per character/scope,
                                                                      unless `chat_id` is set
          create_and_generate_turn -> add_turn (our own line, skipped)
                                   -> add_turn / update_turn ... is_final (the reply)
          {"command": "neo_error", "comment": ...} on failure

The reply's ``raw_content`` is cumulative (each update repeats everything so far); only the
new suffix is yielded. An update that rewrites text already yielded cannot be taken back;
it is skipped and the stream continues from whatever extends what was sent.

One turn is one socket, closed when the stream ends or is cancelled.

Config (`[modules.NAME]`, provider = "characterai"): `character_id` (required),
`token` / `token_env`, `chat_id` (continue an existing chat), `greeting` (bool, default
true: new chats start with the character's greeting), endpoints `rest_url`, `ws_url`;
`timeout` (s per wait, default 30), `connect_timeout` (s, default 10); `max_retries`
(default 2) and `max_retry_after` (s, default `timeout`) bound the retries of a 429/503
from the REST endpoint, as for every HTTP module.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import httpx
import trio
from websockets.trio.client import ClientConnection

from bridge.providers import http
from bridge.providers.base import ConfigError, LLMRequest, ProviderError
from bridge.providers.llm._common import empty_reply
from bridge.providers.llm.ws_session import (
    deadline_error,
    open_websocket,
    recv_text,
    scrubbed_errors,
    send_text,
)
from bridge.providers.registry import ModuleSpec

PROVIDER = "Character AI"
DEFAULT_REST_URL = "https://plus.character.ai"
DEFAULT_WS_URL = "wss://neo.character.ai"
DEFAULT_TIMEOUT_S = 30.0
ORIGIN_ID = "web-next"
RETRY_KEYS = ("max_retries", "max_retry_after")


def ws_endpoint(base: str) -> str:
    base = base.rstrip("/")
    return base + "/" if base.endswith("/ws") else base + "/ws/"


def primary_candidate(turn: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The candidate the turn marks as primary, else its first one."""
    candidates = turn.get("candidates") or []
    if not isinstance(candidates, list) or not candidates:
        return None
    primary = turn.get("primary_candidate_id")
    for candidate in candidates:
        if isinstance(candidate, dict) and primary and candidate.get("candidate_id") == primary:
            return candidate
    first = candidates[0]
    return first if isinstance(first, dict) else None


class CumulativeText:
    """Turns a sequence of cumulative snapshots into deltas.

    ``feed("Hel")`` -> "Hel", ``feed("Hello")`` -> "lo". A snapshot that does not extend
    what was already emitted (the service rewrote it) yields nothing; ``rewrites`` counts them.
    """

    def __init__(self) -> None:
        self.emitted = ""
        self.rewrites = 0

    def feed(self, snapshot: str) -> str:
        if snapshot.startswith(self.emitted):
            delta = snapshot[len(self.emitted) :]
            self.emitted = snapshot
            return delta
        self.rewrites += 1
        return ""


class _Neo:
    """One socket's exchange with the neo service."""

    def __init__(self, ws: ClientConnection, timeout: float) -> None:
        self.ws = ws
        self.timeout = timeout

    async def send(self, message: Mapping[str, Any], during: str) -> None:
        await send_text(self.ws, PROVIDER, json.dumps(message), during)

    async def frame(self, request_id: str, what: str) -> dict[str, Any]:
        """The next frame meant for ``request_id`` (others are skipped), within ``timeout``."""
        with trio.move_on_after(self.timeout):
            while True:
                text = await recv_text(self.ws, PROVIDER, f"while waiting for {what}")
                try:
                    frame = json.loads(text)
                except ValueError:
                    raise ProviderError("backend_error", f"{PROVIDER} sent a frame that is not JSON") from None
                if not isinstance(frame, dict):
                    continue
                if frame.get("request_id") not in (None, request_id):
                    continue
                if frame.get("command") == "neo_error":
                    comment = frame.get("comment") or frame.get("error") or "(no comment)"
                    raise ProviderError("backend_error", f"{PROVIDER} answered with an error: {comment}")
                return frame
        raise deadline_error(PROVIDER, f"waiting for {what}", self.timeout)

    async def create_chat(self, user_id: str, character_id: str, greeting: bool) -> str:
        request_id = str(uuid.uuid4())
        chat_id = str(uuid.uuid4())
        await self.send(
            {
                "command": "create_chat",
                "request_id": request_id,
                "payload": {
                    "chat": {
                        "chat_id": chat_id,
                        "creator_id": user_id,
                        "visibility": "VISIBILITY_PRIVATE",
                        "character_id": character_id,
                        "type": "TYPE_ONE_ON_ONE",
                    },
                    "with_greeting": greeting,
                },
            },
            "on create_chat",
        )
        while True:
            frame = await self.frame(request_id, "the new chat")
            if frame.get("command") == "create_chat_response":
                chat = frame.get("chat") or {}
                chat_id = str(chat.get("chat_id") or chat_id)
                break
        if greeting:
            # The greeting arrives as the chat's first turn; read it so it is not taken
            # for the reply to the player's line.
            while True:
                frame = await self.frame(request_id, "the greeting")
                turn = frame.get("turn") or {}
                if frame.get("command") == "add_turn" and (turn.get("turn_key") or {}).get("chat_id") in (None, chat_id):
                    break
        return chat_id

    async def send_turn(self, user_id: str, character_id: str, chat_id: str, text: str) -> str:
        request_id = str(uuid.uuid4())
        candidate_id = str(uuid.uuid4())
        await self.send(
            {
                "command": "create_and_generate_turn",
                "origin_id": ORIGIN_ID,
                "request_id": request_id,
                "payload": {
                    "character_id": character_id,
                    "num_candidates": 1,
                    "tts_enabled": False,
                    "selected_language": "",
                    "user_name": "",
                    "turn": {
                        "author": {"author_id": user_id, "is_human": True, "name": ""},
                        "candidates": [{"candidate_id": candidate_id, "raw_content": text}],
                        "primary_candidate_id": candidate_id,
                        "turn_key": {"chat_id": chat_id, "turn_id": str(uuid.uuid4())},
                    },
                },
            },
            "on create_and_generate_turn",
        )
        return request_id

    async def reply(self, request_id: str, chat_id: str, text: CumulativeText) -> AsyncIterator[str]:
        reply_turn: str | None = None
        while True:
            frame = await self.frame(request_id, "the reply" if reply_turn is None else "the rest of the reply")
            if frame.get("command") not in ("add_turn", "update_turn"):
                continue
            turn = frame.get("turn") or {}
            key = turn.get("turn_key") or {}
            if key.get("chat_id") not in (None, chat_id):
                continue
            if (turn.get("author") or {}).get("is_human"):
                continue  # the service echoes the player's own line first
            if reply_turn is None:
                reply_turn = key.get("turn_id")
            elif key.get("turn_id") not in (None, reply_turn):
                continue
            candidate = primary_candidate(turn)
            if candidate is None:
                continue
            delta = text.feed(str(candidate.get("raw_content") or ""))
            if delta:
                yield delta
            if candidate.get("is_final"):
                if not text.emitted.strip():
                    raise empty_reply(PROVIDER, "the final turn has no text")
                return


class CharacterAILLM:
    """An LLM whose every reply comes from a Character AI character."""

    def __init__(
        self,
        *,
        token: str,
        character_id: str,
        chat_id: str | None = None,
        greeting: bool = True,
        rest_url: str = DEFAULT_REST_URL,
        ws_url: str = DEFAULT_WS_URL,
        timeout: float = DEFAULT_TIMEOUT_S,
        connect_timeout: float = http.DEFAULT_CONNECT_TIMEOUT_S,
        retry_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.name = "characterai"
        self._token = token
        self.character_id = character_id
        self.chat_id = chat_id
        self.greeting = greeting
        self.rest_url = rest_url.rstrip("/")
        self.ws_url = ws_endpoint(ws_url)
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        # `max_retries` / `max_retry_after` for `http.with_retries`; the wait cap defaults to
        # `timeout` so a rate limit never stalls a turn longer than a silent backend would.
        self.retry_options: dict[str, Any] = {"max_retry_after": timeout, **dict(retry_options or {})}
        self._http: httpx.AsyncClient | None = None
        self._user_id: str | None = None
        self._user_lock = trio.Lock()
        # One chat per (character, scope), so entities sharing this module keep apart.
        self._chats: dict[tuple[str, str], str] = {}
        self.rewrites = 0  # cumulative updates that rewrote already-yielded text

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=httpx.Timeout(self.timeout, connect=self.connect_timeout))
        return self._http

    async def user_id(self) -> str:
        """Our account's id, which new chats and turns must name; fetched once."""
        async with self._user_lock:
            if self._user_id is not None:
                return self._user_id

            async def attempt() -> httpx.Response:
                try:
                    response = await self._client().get(
                        f"{self.rest_url}/chat/user/", headers={"authorization": f"Token {self._token}"}
                    )
                except httpx.HTTPError as exc:
                    raise http.transport_error(PROVIDER, exc) from None
                http.raise_for_status(PROVIDER, response, response.content)
                return response

            response = await http.with_retries(PROVIDER, attempt, self.retry_options)
            try:
                user = response.json()["user"]["user"]
                self._user_id = str(user["id"])
            except (ValueError, KeyError, TypeError):
                raise ProviderError("backend_error", f"{PROVIDER} user endpoint answered without a user id") from None
            return self._user_id

    @asynccontextmanager
    async def stream(self, request: LLMRequest) -> AsyncIterator[AsyncIterator[str]]:
        async with scrubbed_errors([self._token]):
            user_id = await self.user_id()
            cookie = f'HTTP_AUTHORIZATION="Token {self._token}"'
            async with open_websocket(
                PROVIDER, self.ws_url, connect_timeout=self.connect_timeout, headers={"Cookie": cookie}
            ) as ws:
                neo = _Neo(ws, self.timeout)
                key = (request.character, request.scope)
                chat_id = self._chats.get(key) or self.chat_id
                if chat_id is None:
                    chat_id = await neo.create_chat(user_id, self.character_id, self.greeting)
                    self._chats[key] = chat_id
                request_id = await neo.send_turn(user_id, self.character_id, chat_id, request.new_message)
                text = CumulativeText()
                deltas = neo.reply(request_id, chat_id, text)
                try:
                    yield deltas
                finally:
                    self.rewrites += text.rewrites
                    await deltas.aclose()

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None


def create(spec: ModuleSpec) -> CharacterAILLM:
    character_id = spec.option("character_id")
    if not character_id:
        raise ConfigError(f"module {spec.name!r} (characterai) needs `character_id`: the id in the character's URL")
    token = spec.secret("token")
    assert token is not None
    return CharacterAILLM(
        token=token,
        character_id=str(character_id),
        chat_id=spec.option("chat_id"),
        greeting=bool(spec.option("greeting", True)),
        rest_url=spec.option("rest_url", DEFAULT_REST_URL),
        ws_url=spec.option("ws_url", DEFAULT_WS_URL),
        timeout=float(spec.option("timeout", DEFAULT_TIMEOUT_S)),
        connect_timeout=float(spec.option("connect_timeout", http.DEFAULT_CONNECT_TIMEOUT_S)),
        retry_options={k: spec.options[k] for k in RETRY_KEYS if k in spec.options},
    )
