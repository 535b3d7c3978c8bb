"""A fake OpenAI chat-completions server: `POST /v1/chat/completions` streamed as SSE.

It speaks the documented wire format (``chat.completion.chunk`` objects, the first delta
carrying the role, a last chunk with ``finish_reason``, then ``data: [DONE]``; errors as
``{"error": {"message", "type", "param", "code"}}``) and misbehaves on request.

    async with fake_openai_chat(reply="Hi!", fault=None) as server:
        llm = openai_chat.create(ModuleSpec("gpt", "llm", "openai", server.options()))

`server.url` is the base URL a client is configured with (it ends in ``/v1``). `reply` may
also be a function of the request body: benchmarks tag each reply with the turn that asked.

Pacing (for tests and benchmarks): ``first_token_delay`` seconds before the first content
chunk, then ``tokens_per_s`` content chunks a second (``None``: as fast as possible).

Fault modes (``fault=``):

- ``"error"``: answer ``error_status`` (default 401) with an error body saying ``error_message``.
- ``"rate_limit"``: the first ``fault_times`` requests get ``error_status`` (default 429)
  with ``Retry-After: retry_after``; later ones succeed. Use a large ``fault_times`` to
  check that a client gives up.
- ``"hang_headers"``: never send a response head (until the client hangs up).
- ``"hang"``: send the head and the role chunk, then nothing (until the client hangs up).
- ``"drop"``: send half the reply, then cut the TCP connection.
- ``"malformed"``: send one good chunk, then a ``data:`` line that is not JSON.
- ``"stream_error"``: send one good chunk, then an ``{"error": ...}`` event (as OpenAI
  does when a stream fails server-side).
- ``"empty"``: a well-formed stream whose content is empty.

Tool calls (``tool_calls=``): a list of ``(name, arguments_json)`` (or a function of the
request body returning one) streamed after the content the way the API does: per call, a
first ``delta.tool_calls`` fragment with ``index``, ``id``, ``type`` and the name (and empty
arguments), then the JSON arguments cut into small pieces, and a last chunk with
``finish_reason: "tool_calls"``. A reply of only tool calls has ``content: null``.
``hold_before_finish`` (a trio.Event) keeps the reply open before its last chunk until set,
so a test can prove the client acted on something before the reply ended.

When `api_key` is set, a request without ``Authorization: Bearer <api_key>`` gets a 401.
The server records every request (`requests`) and notices when a client goes away in the
middle of a reply (`client_gone`, an Event, and `early_closes`); `inflight` counts the
requests it is still answering (a hang ends when the client hangs up).
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import trio

from tests.fakes.http_server import FakeHTTPServer, FakeRequest, Responder, serve_http, sse
from tests.fakes.inflight import InFlight
from tests.fakes.stt_support import hang_until_disconnect

#: How long a hanging fake waits for the client to give up before it stops waiting.
HANG_LIMIT_S = 3600.0

FAULTS = (None, "error", "rate_limit", "hang_headers", "hang", "drop", "malformed", "stream_error", "empty")


def split_tokens(text: str) -> list[str]:
    """Cut `text` into word-sized pieces (leading space kept) that join back exactly."""
    return re.findall(r"\s*\S+|\s+", text)


@dataclass
class StreamWatch:
    """What a fake saw of its clients while streaming; shared by the LLM fakes."""

    client_gone: trio.Event = field(default_factory=trio.Event)
    early_closes: int = 0
    completed: int = 0
    first_byte_at: list[float] = field(default_factory=list)

    async def write(self, res: Responder, data: bytes | str) -> None:
        """Write part of a reply; record it if the client has hung up."""
        try:
            await res.write(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self.early_closes += 1
            self.client_gone.set()
            raise


async def pace(index: int, first_token_delay: float, tokens_per_s: float | None) -> None:
    """Sleep before content chunk number `index`, as a model generating at that speed would."""
    if index == 0:
        if first_token_delay > 0:
            await trio.sleep(first_token_delay)
    elif tokens_per_s:
        await trio.sleep(1.0 / tokens_per_s)


@dataclass
class FakeOpenAIChat:
    http: FakeHTTPServer
    watch: StreamWatch
    model: str
    api_key: str | None
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

    @property
    def early_closes(self) -> int:
        return self.watch.early_closes

    @property
    def open_connections(self) -> int:
        return self.http.open_connections

    def options(self, **extra: Any) -> dict[str, Any]:
        """Module options that point an `openai` module at this fake."""
        opts: dict[str, Any] = {"base_url": self.url, "model": self.model}
        if self.api_key:
            opts["api_key"] = self.api_key
        opts.update(extra)
        return opts


def chunk(model: str, created: int, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "system_fingerprint": "fp_fake",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }


def openai_error(message: str, status: int) -> dict[str, Any]:
    kind = {401: "invalid_request_error", 429: "requests", 400: "invalid_request_error"}.get(status, "server_error")
    code = {401: "invalid_api_key", 429: "rate_limit_exceeded"}.get(status)
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


@asynccontextmanager
async def fake_openai_chat(
    reply: str | Callable[[dict[str, Any]], str] = "Hello there, traveller!",
    *,
    fault: str | None = None,
    model: str = "gpt-fake",
    api_key: str | None = "sk-fake-0123456789",
    error_status: int | None = None,
    error_message: str = "Incorrect API key provided.",
    retry_after: float = 0.05,
    fault_times: int = 1,
    first_token_delay: float = 0.0,
    tokens_per_s: float | None = None,
    on_request: Callable[[FakeRequest], None] | None = None,
    tool_calls: list[tuple[str, str]] | Callable[[dict[str, Any]], list[tuple[str, str]]] | None = None,
    tool_piece_chars: int = 4,
    hold_before_finish: trio.Event | None = None,
) -> AsyncIterator[FakeOpenAIChat]:
    if fault not in FAULTS:
        raise ValueError(f"unknown fault {fault!r}; one of {FAULTS}")
    watch = StreamWatch()
    inflight = InFlight()
    faults_left = fault_times

    async def hang(res: Responder) -> None:
        """Send nothing more; return once the client hangs up (so tests see it did)."""
        if await hang_until_disconnect(res, HANG_LIMIT_S):
            watch.early_closes += 1
            watch.client_gone.set()

    async def handler(req: FakeRequest, res: Responder) -> None:
        nonlocal faults_left
        if on_request is not None:
            on_request(req)
        if req.method != "POST" or req.path != "/v1/chat/completions":
            await res.send_json(404, openai_error(f"Unknown request URL: {req.method} {req.path}", 404))
            return
        if api_key and req.headers.get("authorization") != f"Bearer {api_key}":
            await res.send_json(401, openai_error("Incorrect API key provided.", 401))
            return
        if fault == "error":
            status = error_status or 401
            await res.send_json(status, openai_error(error_message, status))
            return
        if fault == "rate_limit" and faults_left > 0:
            faults_left -= 1
            status = error_status or 429
            await res.send_json(
                status,
                openai_error("Rate limit reached for requests", status),
                {"retry-after": f"{retry_after:g}"},
            )
            return
        if fault == "hang_headers":
            await hang(res)
            return
        try:
            body = req.json()
        except ValueError:
            await res.send_json(400, openai_error("We could not parse the JSON body of your request.", 400))
            return
        if not body.get("stream"):
            await res.send_json(400, openai_error("this fake only streams", 400))
            return
        created = int(time.time())
        name = body.get("model", model)
        await res.start(200, {"content-type": "text/event-stream; charset=utf-8"})
        calls = (tool_calls(body) if callable(tool_calls) else tool_calls) or []
        text = reply(body) if callable(reply) else reply
        first_content: str | None = "" if text or not calls else None
        await watch.write(res, sse(chunk(name, created, {"role": "assistant", "content": first_content})))
        if fault == "hang":
            await hang(res)
            return
        pieces = [] if fault == "empty" else split_tokens(text)
        if fault == "drop":
            pieces = pieces[: max(1, len(pieces) // 2)]
        elif fault in ("malformed", "stream_error"):
            pieces = pieces[:1]
        for i, piece in enumerate(pieces):
            await pace(i, first_token_delay, tokens_per_s)
            if i == 0:
                watch.first_byte_at.append(trio.current_time())
            await watch.write(res, sse(chunk(name, created, {"content": piece})))
        if fault == "drop":
            await res.abort()
            return
        if fault == "malformed":
            await watch.write(res, b'data: {"id": "chatcmpl-fake", "choices": [{"delta": {"content": "x"\n\n')
            await res.end()
            return
        if fault == "stream_error":
            await watch.write(res, sse({"error": {"message": "The server had an error while processing your request.", "type": "server_error", "param": None, "code": None}}))
            await res.end()
            return
        for index, (tool, arguments) in enumerate(calls):
            head = {"index": index, "id": f"call_fake{index}", "type": "function", "function": {"name": tool, "arguments": ""}}
            await watch.write(res, sse(chunk(name, created, {"tool_calls": [head]})))
            for at in range(0, len(arguments), tool_piece_chars):
                piece = {"index": index, "function": {"arguments": arguments[at : at + tool_piece_chars]}}
                await pace(1, 0, tokens_per_s)
                await watch.write(res, sse(chunk(name, created, {"tool_calls": [piece]})))
        if hold_before_finish is not None:  # the reply stays open until the test says so
            await hold_before_finish.wait()
        await watch.write(res, sse(chunk(name, created, {}, "tool_calls" if calls else "stop")))
        if (body.get("stream_options") or {}).get("include_usage"):
            usage = {"prompt_tokens": 10, "completion_tokens": len(pieces), "total_tokens": 10 + len(pieces)}
            await watch.write(res, sse({**chunk(name, created, {}), "choices": [], "usage": usage}))
        await watch.write(res, sse("[DONE]"))
        await res.end()
        watch.completed += 1

    async with serve_http(inflight.wrap(handler)) as http:
        yield FakeOpenAIChat(http=http, watch=watch, model=model, api_key=api_key, inflight=inflight)
