"""Fakes of the local LLM servers the bridge looks for at start, each on its own 127.0.0.1 port.

Each speaks its server's documented model listing and an OpenAI-style streamed chat:

- Ollama: `GET /api/tags` -> `{"models": [{"name", "model", "modified_at", "size", "digest", "details"}]}`
  (and `/v1/chat/completions`, its OpenAI-compatible route).
- LM Studio, llama.cpp server, vLLM, text-generation-webui: `GET /v1/models` ->
  `{"object": "list", "data": [{"id", "object": "model", "created", "owned_by"}]}`, with the
  `owned_by` each one reports, and `POST /v1/chat/completions` streamed as SSE.

The reply names the server and the model asked for, so a test can tell who answered.

    async with fake_local_server("ollama", models=["llama3.2:latest"]) as server:
        os.environ["ENTITY_BRIDGE_DETECT"] = f"ollama=127.0.0.1:{server.port}"
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from tests.fakes.http_server import FakeHTTPServer, FakeRequest, Responder, serve_http, sse
from tests.fakes.openai_chat import chunk, openai_error, split_tokens

OWNED_BY = {"lmstudio": "organization_owner", "llamacpp": "llamacpp", "vllm": "vllm", "textgen": "system"}
KINDS = ("ollama", *OWNED_BY)


@dataclass
class FakeLocalServer:
    kind: str
    http: FakeHTTPServer
    models: list[str]

    @property
    def port(self) -> int:
        return self.http.port

    @property
    def chats(self) -> list[FakeRequest]:
        return [r for r in self.http.requests if r.path == "/v1/chat/completions"]


def reply_for(kind: str, model: str) -> str:
    return f"Hello from {kind} running {model}."


@asynccontextmanager
async def fake_local_server(kind: str, models: list[str] | None = None) -> AsyncIterator[FakeLocalServer]:
    if kind not in KINDS:
        raise ValueError(kind)
    names = ["llama3.2:latest"] if models is None else models

    async def handler(req: FakeRequest, res: Responder) -> None:
        if req.method == "GET" and kind == "ollama" and req.path == "/api/tags":
            listing = [
                {"name": n, "model": n, "modified_at": "2026-11-30T10:00:00Z", "size": 2019393189, "digest": "a80c4f17acd5", "details": {"format": "gguf", "family": "llama"}}
                for n in names
            ]
            await res.send_json(200, {"models": listing})
            return
        if req.method == "GET" and req.path == "/v1/models":
            data = [{"id": n, "object": "model", "created": 1764500000, "owned_by": OWNED_BY.get(kind, "library")} for n in names]
            await res.send_json(200, {"object": "list", "data": data})
            return
        if req.method != "POST" or req.path != "/v1/chat/completions":
            await res.send_json(404, openai_error(f"Unknown request URL: {req.method} {req.path}", 404))
            return
        body = req.json()
        model = body.get("model", "")
        if model not in names:
            await res.send_json(404, openai_error(f"model {model!r} not found", 404))
            return
        created = int(time.time())
        await res.start(200, {"content-type": "text/event-stream"})
        await res.write(sse(chunk(model, created, {"role": "assistant", "content": ""})))
        for piece in split_tokens(reply_for(kind, model)):
            await res.write(sse(chunk(model, created, {"content": piece})))
        await res.write(sse(chunk(model, created, {}, "stop")))
        await res.write(sse("[DONE]"))
        await res.end()

    async with serve_http(handler) as http:
        yield FakeLocalServer(kind, http, names)
