"""`kindroid`: Kindroid's official API, which keeps the conversation on its side.

``POST /send-message {"ai_id", "message", "stream"}`` answers ``text/plain``; with
``stream: true`` the text arrives piece by piece. Kindroid holds the history and the
persona, so only the player's new message is sent (``request.new_message``); the
harmonizer's prompt is not. ``POST /chat-break {"ai_id", "greeting"}`` starts a fresh chat
and is exposed as :meth:`KindroidLLM.chat_break`. Errors come back as short plain text.
A 200 whose body is labelled as something other than ``text/plain`` (a proxy's HTML error
page, a JSON error object) is an error, not the character's words: speaking it aloud
would be worse than saying nothing.

Options: `ai_id` (required), `api_key` / `api_key_env` (required, ``kn_...``), `base_url`
(default https://api.kindroid.ai/v1), `stream` (default true), `timeout` (default 60 s:
Kindroid may think a while before its first byte), `connect_timeout`, `max_retries`,
`max_retry_after`. Sampling options do not exist in this API and are ignored.
"""

from __future__ import annotations

import codecs
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, aclosing, asynccontextmanager
from typing import Any

import httpx
import trio

from bridge.providers.base import ConfigError, LLMRequest, ProviderError
from bridge.providers.http import (
    error_message_from_body,
    make_client,
    open_stream,
    raise_for_status,
    transport_error,
    with_retries,
)
from bridge.providers.llm._common import CLOSE_TIMEOUT_S, closing_deltas, empty_reply, redacted, require_str
from bridge.providers.registry import ModuleSpec

PROVIDER = "Kindroid"
DEFAULT_BASE_URL = "https://api.kindroid.ai/v1"
DEFAULT_TIMEOUT_S = 60.0
#: How much of a body that is not a reply is read to quote it in the error.
_QUOTE_BYTES = 2000


class KindroidLLM:
    def __init__(self, *, module: str, base_url: str, api_key: str, ai_id: str, options: Mapping[str, Any]) -> None:
        self.name = "kindroid"
        self.module = module
        self.ai_id = ai_id
        self._api_key = api_key
        self._stream = bool(options.get("stream", True))
        self._options = {"timeout": DEFAULT_TIMEOUT_S, **options}
        self._client = make_client(self._options, base_url=base_url, headers={"authorization": f"Bearer {api_key}"})

    async def _text(self, response: httpx.Response) -> AsyncIterator[str]:
        """The body as text, decoded incrementally: a UTF-8 character may span two reads."""
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        got_text = False
        try:
            async with aclosing(response.aiter_bytes()) as chunks:
                async for raw in chunks:
                    text = decoder.decode(raw)
                    if text:
                        got_text = got_text or bool(text.strip())
                        yield text
            tail = decoder.decode(b"", final=True)
            if tail:
                got_text = got_text or bool(tail.strip())
                yield tail
        except httpx.HTTPError as exc:
            raise transport_error(PROVIDER, exc) from None
        if not got_text:
            raise empty_reply(PROVIDER)

    @asynccontextmanager
    async def stream(self, request: LLMRequest) -> AsyncIterator[AsyncIterator[str]]:
        message = request.new_message
        if not message.strip():
            raise ProviderError("backend_error", f"{PROVIDER} needs a non-empty message")
        body = {"ai_id": self.ai_id, "message": message, "stream": self._stream}
        async with AsyncExitStack() as stack:
            try:
                response = await stack.enter_async_context(
                    open_stream(self._client, PROVIDER, "POST", "/send-message", self._options, json=body)
                )
            except ProviderError as exc:
                raise redacted(exc, self._api_key) from None
            await self._check_media_type(response)
            async with closing_deltas(self._text(response)) as deltas:
                yield deltas

    async def _check_media_type(self, response: httpx.Response) -> None:
        """Raise unless the reply is ``text/plain`` (or unlabelled, which we take on trust)."""
        media = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if not media or media == "text/plain":
            return
        body = bytearray()
        try:
            async with aclosing(response.aiter_bytes()) as chunks:
                async for raw in chunks:
                    body += raw
                    if len(body) >= _QUOTE_BYTES:
                        break
        except httpx.HTTPError as exc:
            raise transport_error(PROVIDER, exc) from None
        quote = error_message_from_body(bytes(body[:_QUOTE_BYTES]))[:200]
        error = ProviderError("backend_error", f"{PROVIDER} answered with {media} instead of a text reply: {quote}")
        raise redacted(error, self._api_key)

    async def chat_break(self, greeting: str) -> None:
        """End the current chat on Kindroid's side; the character opens the next with `greeting`."""
        body = {"ai_id": self.ai_id, "greeting": greeting}

        async def attempt() -> None:
            try:
                response = await self._client.post("/chat-break", json=body)
            except httpx.HTTPError as exc:
                raise transport_error(PROVIDER, exc) from None
            raise_for_status(PROVIDER, response, response.content)

        try:
            await with_retries(PROVIDER, attempt, self._options)
        except ProviderError as exc:
            raise redacted(exc, self._api_key) from None

    async def aclose(self) -> None:
        with trio.move_on_after(CLOSE_TIMEOUT_S) as scope:
            scope.shield = True
            await self._client.aclose()


def create(spec: ModuleSpec) -> KindroidLLM:
    options = spec.options
    ai_id = require_str(spec.name, options, "ai_id")
    base_url = options.get("base_url", DEFAULT_BASE_URL)
    if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
        raise ConfigError(f"module {spec.name!r}: `base_url` must be an http(s) URL, got {base_url!r}")
    api_key = spec.secret("api_key")
    assert api_key is not None  # required=True raised ConfigError otherwise
    return KindroidLLM(module=spec.name, base_url=base_url.rstrip("/"), api_key=api_key, ai_id=ai_id, options=options)
