"""`textgen`: text-generation-webui's OpenAI-compatible chat endpoint, streamed.

The server's stream bends the format: the harmony fork never sends ``data: [DONE]`` and
separates events with ``\\r\\n``; every chunk repeats the role; the last one carries empty
content with ``finish_reason`` and usage. Upstream does send ``[DONE]``. The body is read by
`bridge.providers.llm._chat_stream` (shared with the `openai` module), which ends the reply
at ``[DONE]``, at the chunk with a ``finish_reason``, or at a clean end of body.

Options: `base_url` (default http://127.0.0.1:5000; a trailing ``/v1`` is accepted),
`api_key` / `api_key_env` (only if the server was started with ``--api-key``), `model`,
`timeout`, `connect_timeout`, `max_retries`, `max_retry_after`, `temperature`, `max_tokens`,
`top_p`, `stop`, and the server's extras: `mode` (instruct | chat | chat-instruct),
`character`, `name1` (the user's name), `name2` (the character's), `preset`, plus `extra`
(a table merged into the request body, for anything else the server accepts).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import trio

from bridge.providers.base import ChatMessage, ConfigError, LLMRequest, ProviderError
from bridge.providers.http import (
    make_client,
    open_stream,
    raise_for_status,
    transport_error,
    with_retries,
)
from bridge.providers.llm._chat_stream import chat_deltas
from bridge.providers.llm._common import (
    CLOSE_TIMEOUT_S,
    closing_deltas,
    malformed,
    openai_messages,
    optional_str,
    redacted,
    sampling,
)
from bridge.providers.registry import ModuleSpec

PROVIDER = "text-generation-webui"
DEFAULT_BASE_URL = "http://127.0.0.1:5000"
MODES = ("instruct", "chat", "chat-instruct")
EXTRA_KEYS = ("mode", "character", "name1", "name2", "preset")


@dataclass(frozen=True, slots=True)
class TextgenHistory:
    """A character's saved chat as the harmony fork's ``GET /v1/history`` returns it."""

    unique_id: str | None
    messages: list[ChatMessage]
    user_name: str | None
    character_name: str | None


class TextgenLLM:
    def __init__(self, *, module: str, base_url: str, api_key: str | None, options: Mapping[str, Any]) -> None:
        self.name = "textgen"
        self.module = module
        self.base_url = base_url
        self._api_key = api_key
        self._options = options
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = make_client(options, base_url=base_url, headers=headers)

    # ------------------------------------------------------------------ request

    def _body(self, request: LLMRequest) -> dict[str, Any]:
        body: dict[str, Any] = {"messages": openai_messages(request.messages), "stream": True}
        model = request.options.get("model") or self._options.get("model")
        if model:
            body["model"] = model
        body.update(sampling(self._options, request.options))
        for key in EXTRA_KEYS:
            value = request.options.get(key, self._options.get(key))
            if value is not None:
                body[key] = value
        extra = self._options.get("extra")
        if extra:
            body.update({k: v for k, v in extra.items() if k not in ("messages", "stream")})
        return body

    # ------------------------------------------------------------------ stream

    @asynccontextmanager
    async def stream(self, request: LLMRequest) -> AsyncIterator[AsyncIterator[str]]:
        async with AsyncExitStack() as stack:
            try:
                response = await stack.enter_async_context(
                    open_stream(self._client, PROVIDER, "POST", "/v1/chat/completions", self._options, json=self._body(request), lean=True)
                )
            except ProviderError as exc:
                raise redacted(exc, self._api_key) from None
            async with closing_deltas(chat_deltas(response, PROVIDER, self._api_key)) as deltas:
                yield deltas
            # leaving the stack closes the response (shielded, in open_stream)

    # ------------------------------------------------------------------ extras

    async def history(self, character: str | None = None) -> TextgenHistory:
        """The saved chat of `character` (default: the configured one); harmony fork only."""
        name = character or self._options.get("character")
        if not name:
            raise ConfigError(f"module {self.module!r}: history needs a character (option `character`)")

        async def attempt() -> httpx.Response:
            try:
                response = await self._client.get("/v1/history", params={"character": name})
            except httpx.HTTPError as exc:
                raise transport_error(PROVIDER, exc) from None
            raise_for_status(PROVIDER, response, response.content)
            return response

        try:
            response = await with_retries(PROVIDER, attempt, self._options)
        except ProviderError as exc:
            raise redacted(exc, self._api_key) from None
        try:
            data = response.json()
            turns = data.get("history") or []
            messages = [
                ChatMessage(turn["role"], str(turn.get("content", "")))
                for turn in turns
                if turn.get("role") in ("system", "user", "assistant")
            ]
        except (ValueError, AttributeError, KeyError, TypeError) as exc:
            raise malformed(PROVIDER, f"history is not the expected JSON ({exc})") from None
        return TextgenHistory(
            unique_id=data.get("unique_id"),
            messages=messages,
            user_name=data.get("user_name"),
            character_name=data.get("character_name"),
        )

    async def aclose(self) -> None:
        with trio.move_on_after(CLOSE_TIMEOUT_S) as scope:
            scope.shield = True
            await self._client.aclose()


def create(spec: ModuleSpec) -> TextgenLLM:
    options = spec.options
    base_url = options.get("base_url", DEFAULT_BASE_URL)
    if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
        raise ConfigError(f"module {spec.name!r}: `base_url` must be an http(s) URL, got {base_url!r}")
    base_url = base_url.rstrip("/")
    if base_url.endswith("/v1"):
        base_url = base_url[: -len("/v1")]
    mode = options.get("mode")
    if mode is not None and mode not in MODES:
        raise ConfigError(f"module {spec.name!r}: `mode` must be one of {', '.join(MODES)}, got {mode!r}")
    for key in ("character", "name1", "name2", "preset", "model"):
        optional_str(spec.name, options, key)
    extra = options.get("extra")
    if extra is not None and not isinstance(extra, Mapping):
        raise ConfigError(f"module {spec.name!r}: `extra` must be a table")
    return TextgenLLM(
        module=spec.name,
        base_url=base_url,
        api_key=spec.secret("api_key", required=False),
        options=options,
    )
