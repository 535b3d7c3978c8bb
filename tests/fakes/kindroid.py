"""A fake Kindroid API: `POST /v1/send-message` and `POST /v1/chat-break`.

Speaks the official wire format: ``Authorization: Bearer kn_...``; ``send-message`` takes
``{"ai_id", "message", "stream"}`` and answers ``text/plain`` (streamed piece by piece when
``stream`` is true, one body otherwise); ``chat-break`` takes ``{"ai_id", "greeting"}``.
Errors are short plain text with a 4xx/5xx status.

    async with fake_kindroid(reply="Hey you!") as server:
        llm = kindroid.create(ModuleSpec("kin", "llm", "kindroid", server.options()))

`server.url` is the base URL (it ends in ``/v1``). ``chunk_bytes=n`` streams the UTF-8 body
n bytes at a time, so characters get cut in half on the wire.

Fault modes (``fault=``): ``"error"`` (``error_status`` with ``error_message``),
``"rate_limit"`` (the first ``fault_times`` requests get 429 + Retry-After), ``"hang_headers"``,
``"hang"`` (after the first piece; hangs end when the client hangs up), ``"drop"`` (cut
the connection mid-reply), ``"empty"``, ``"garbage"`` (a 200 HTML page from a proxy instead
of the ``text/plain`` reply).
A wrong key gets 401, an unknown ``ai_id`` 404, a missing field 400.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import trio

from tests.fakes.http_server import FakeHTTPServer, FakeRequest, Responder, serve_http
from tests.fakes.inflight import InFlight
from tests.fakes.openai_chat import HANG_LIMIT_S, StreamWatch, pace, split_tokens
from tests.fakes.stt_support import hang_until_disconnect

FAULTS = (None, "error", "rate_limit", "hang_headers", "hang", "drop", "empty", "garbage")
#: What a proxy in front of the API answers when the upstream is down: a 200 page that is
#: not Kindroid's text/plain reply.
GARBAGE_PAGE = "<html><body><h1>502 Bad Gateway</h1><p>cloudflare</p></body></html>"



@dataclass
class FakeKindroid:
    http: FakeHTTPServer
    watch: StreamWatch
    api_key: str
    ai_id: str
    chat_breaks: list[dict[str, Any]] = field(default_factory=list)
    inflight: InFlight = field(default_factory=InFlight)

    @property
    def url(self) -> str:
        return self.http.url + "/v1"

    @property
    def requests(self) -> list[FakeRequest]:
        return self.http.requests

    @property
    def client_gone(self) -> trio.Event:
        return self.watch.client_gone

    def options(self, **extra: Any) -> dict[str, Any]:
        """Module options that point a `kindroid` module at this fake."""
        return {"base_url": self.url, "api_key": self.api_key, "ai_id": self.ai_id, **extra}


@asynccontextmanager
async def fake_kindroid(
    reply: str = "Hey! I missed you. How was the trip?",
    *,
    fault: str | None = None,
    api_key: str = "kn_fake_0123456789abcdef",
    ai_id: str = "ai-fake-42",
    chunk_bytes: int | None = None,
    error_status: int = 500,
    error_message: str = "Internal server error",
    retry_after: float = 0.05,
    fault_times: int = 1,
    first_token_delay: float = 0.0,
    tokens_per_s: float | None = None,
) -> AsyncIterator[FakeKindroid]:
    if fault not in FAULTS:
        raise ValueError(f"unknown fault {fault!r}; one of {FAULTS}")
    watch = StreamWatch()
    inflight = InFlight()
    faults_left = fault_times
    server: FakeKindroid

    async def hang(res: Responder) -> None:
        """Send nothing more; return once the client hangs up (so tests see it did)."""
        if await hang_until_disconnect(res, HANG_LIMIT_S):
            watch.early_closes += 1
            watch.client_gone.set()

    async def plain(res: Responder, status: int, text: str, headers: dict[str, str] | None = None) -> None:
        await res.send(status, text, {"content-type": "text/plain; charset=utf-8", **(headers or {})})

    async def handler(req: FakeRequest, res: Responder) -> None:
        nonlocal faults_left
        if req.headers.get("authorization") != f"Bearer {api_key}":
            await plain(res, 401, "Unauthorized: invalid API key")
            return
        if req.method != "POST" or req.path not in ("/v1/send-message", "/v1/chat-break"):
            await plain(res, 404, "Not found")
            return
        try:
            body = req.json()
        except ValueError:
            await plain(res, 400, "Invalid JSON")
            return
        if body.get("ai_id") != ai_id:
            await plain(res, 404 if body.get("ai_id") else 400, "AI not found" if body.get("ai_id") else "Missing ai_id")
            return
        if req.path == "/v1/chat-break":
            if not isinstance(body.get("greeting"), str) or not body["greeting"]:
                await plain(res, 400, "Missing greeting")
                return
            server.chat_breaks.append(body)
            await plain(res, 200, "Chat break successful")
            return
        if not isinstance(body.get("message"), str) or not body["message"]:
            await plain(res, 400, "Missing message")
            return
        if fault == "error":
            await plain(res, error_status, error_message)
            return
        if fault == "rate_limit" and faults_left > 0:
            faults_left -= 1
            await plain(res, 429, "Too many requests", {"retry-after": f"{retry_after:g}"})
            return
        if fault == "hang_headers":
            await hang(res)
            return
        if fault == "garbage":
            await res.send(200, GARBAGE_PAGE, {"content-type": "text/html; charset=utf-8"})
            return
        text = "" if fault == "empty" else reply
        if not body.get("stream"):
            await pace(0, first_token_delay, None)
            await plain(res, 200, text)
            return
        await res.start(200, {"content-type": "text/plain; charset=utf-8"})
        pieces = [p.encode() for p in split_tokens(text)]
        if chunk_bytes:
            data = b"".join(pieces)
            pieces = [data[i : i + chunk_bytes] for i in range(0, len(data), chunk_bytes)]
        if fault == "drop":
            pieces = pieces[: max(1, len(pieces) // 2)]
        elif fault == "hang":
            pieces = pieces[:1]
        for i, piece in enumerate(pieces):
            await pace(i, first_token_delay, tokens_per_s)
            await watch.write(res, piece)
        if fault == "hang":
            await hang(res)
            return
        if fault == "drop":
            await res.abort()
            return
        await res.end()
        watch.completed += 1

    async with serve_http(inflight.wrap(handler)) as http:
        server = FakeKindroid(http=http, watch=watch, api_key=api_key, ai_id=ai_id, inflight=inflight)
        yield server
