"""A fake text-generation-webui: `POST /v1/chat/completions` (SSE) and `GET /v1/history`.

Two flavours of the stream, as the real servers send them:

- ``"harmony"`` (the harmony-ai fork): events end with ``\\r\\n\\r\\n``, every chunk repeats
  ``"role": "assistant"``, the last chunk has empty content, ``finish_reason`` and
  ``usage``, and there is no ``data: [DONE]``; a ``: ping`` comment comes first.
- ``"upstream"``: ``\\n\\n`` separators and a final ``data: [DONE]``.

    async with fake_textgen(reply="Hi!", flavour="harmony") as server:
        llm = textgen.create(ModuleSpec("tg", "llm", "textgen", server.options()))

``split_writes=n`` cuts every event into n-byte writes, so a client's decoder meets
boundaries in the middle of ``\\r\\n`` and of UTF-8 characters.

Fault modes (``fault=``): ``"error"`` (``error_status`` with ``{"detail": error_message}``),
``"rate_limit"`` (the first ``fault_times`` requests get 429 + Retry-After), ``"hang_headers"``,
``"hang"`` (after the first chunk; hangs end when the client hangs up), ``"drop"`` (cut the connection mid-reply),
``"malformed"`` (a ``data:`` line that is not JSON), ``"empty"`` (no content at all).

``histories`` maps a character name to its saved chat for ``GET /v1/history?character=X``
(a list of ``{"role", "content"}``); an unknown character gets a 404 with a ``detail``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import trio

from tests.fakes.http_server import FakeHTTPServer, FakeRequest, Responder, serve_http, sse
from tests.fakes.inflight import InFlight
from tests.fakes.openai_chat import HANG_LIMIT_S, StreamWatch, pace, split_tokens
from tests.fakes.stt_support import hang_until_disconnect

FAULTS = (None, "error", "rate_limit", "hang_headers", "hang", "drop", "malformed", "empty")
FLAVOURS = ("harmony", "upstream")


@dataclass
class FakeTextgen:
    http: FakeHTTPServer
    watch: StreamWatch
    api_key: str | None
    inflight: InFlight = field(default_factory=InFlight)

    @property
    def url(self) -> str:
        return self.http.url

    @property
    def requests(self) -> list[FakeRequest]:
        return self.http.requests

    @property
    def client_gone(self) -> trio.Event:
        return self.watch.client_gone

    def options(self, **extra: Any) -> dict[str, Any]:
        """Module options that point a `textgen` module at this fake."""
        opts: dict[str, Any] = {"base_url": self.url}
        if self.api_key:
            opts["api_key"] = self.api_key
        opts.update(extra)
        return opts


def _chunk(model: str, created: int, content: str, finish: str | None, *, harmony: bool) -> dict[str, Any]:
    delta: dict[str, Any] = {"role": "assistant", "content": content} if harmony else {"content": content}
    return {
        "id": "chatcmpl-1712345678901234567",
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "finish_reason": finish, "delta": delta}],
    }


@asynccontextmanager
async def fake_textgen(
    reply: str = "Greetings, traveller. The road is long.",
    *,
    flavour: str = "harmony",
    fault: str | None = None,
    api_key: str | None = None,
    model: str = "SmolLM2-1.7B-Instruct-Q4_K_M.gguf",
    histories: Mapping[str, list[dict[str, str]]] | None = None,
    user_name: str = "You",
    split_writes: int | None = None,
    error_status: int = 500,
    error_message: str = "No model is loaded.",
    retry_after: float = 0.05,
    fault_times: int = 1,
    first_token_delay: float = 0.0,
    tokens_per_s: float | None = None,
) -> AsyncIterator[FakeTextgen]:
    if fault not in FAULTS:
        raise ValueError(f"unknown fault {fault!r}; one of {FAULTS}")
    if flavour not in FLAVOURS:
        raise ValueError(f"unknown flavour {flavour!r}; one of {FLAVOURS}")
    harmony = flavour == "harmony"
    sep = "\r\n" if harmony else "\n"
    watch = StreamWatch()
    inflight = InFlight()
    faults_left = fault_times

    async def hang(res: Responder) -> None:
        """Send nothing more; return once the client hangs up (so tests see it did)."""
        if await hang_until_disconnect(res, HANG_LIMIT_S):
            watch.early_closes += 1
            watch.client_gone.set()

    async def send_event(res: Responder, data: bytes) -> None:
        if not split_writes:
            await watch.write(res, data)
            return
        for i in range(0, len(data), split_writes):
            await watch.write(res, data[i : i + split_writes])

    async def history(req: FakeRequest, res: Responder) -> None:
        name = (req.query.get("character") or [""])[0]
        saved = (histories or {}).get(name)
        if saved is None:
            await res.send_json(404, {"detail": f"Character '{name}' not found"})
            return
        await res.send_json(
            200,
            {"unique_id": f"{name.lower()}-20240101-00-00-00", "history": saved, "user_name": user_name, "character_name": name},
        )

    async def handler(req: FakeRequest, res: Responder) -> None:
        nonlocal faults_left
        if api_key and req.headers.get("authorization") != f"Bearer {api_key}":
            await res.send_json(401, {"detail": "Invalid API Key"})
            return
        if req.method == "GET" and req.path == "/v1/history":
            await history(req, res)
            return
        if req.method != "POST" or req.path != "/v1/chat/completions":
            await res.send_json(404, {"detail": "Not Found"})
            return
        if fault == "error":
            await res.send_json(error_status, {"detail": error_message})
            return
        if fault == "rate_limit" and faults_left > 0:
            faults_left -= 1
            await res.send_json(429, {"detail": "Too many requests"}, {"retry-after": f"{retry_after:g}"})
            return
        if fault == "hang_headers":
            await hang(res)
            return
        body = req.json()
        created = int(time.time())
        await res.start(200, {"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache"})
        if harmony:
            await send_event(res, f": ping - 2024-01-01 00:00:00{sep}{sep}".encode())
        pieces = [] if fault == "empty" else split_tokens(reply)
        if fault == "drop":
            pieces = pieces[: max(1, len(pieces) // 2)]
        elif fault in ("malformed", "hang"):
            pieces = pieces[:1]
        for i, piece in enumerate(pieces):
            await pace(i, first_token_delay, tokens_per_s)
            await send_event(res, sse(_chunk(model, created, piece, None, harmony=harmony), sep=sep))
        if fault == "hang":
            await hang(res)
            return
        if fault == "drop":
            await res.abort()
            return
        if fault == "malformed":
            await send_event(res, f"data: {{'choices': nope{sep}{sep}".encode())
            await res.end()
            return
        last = _chunk(model, created, "", "stop", harmony=True)
        prompt_tokens = sum(len(m.get("content", "").split()) for m in body.get("messages", []))
        last["usage"] = {"prompt_tokens": prompt_tokens, "completion_tokens": len(pieces), "total_tokens": prompt_tokens + len(pieces)}
        await send_event(res, sse(last, sep=sep))
        watch.completed += 1
        # The reply is complete; a client may hang up now without reading the rest.
        try:
            if not harmony:
                await res.write(sse("[DONE]", sep=sep))
            await res.end()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return

    async with serve_http(inflight.wrap(handler)) as http:
        yield FakeTextgen(http=http, watch=watch, api_key=api_key, inflight=inflight)
