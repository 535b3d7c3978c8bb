"""`openai`: streaming chat completions from OpenAI or any OpenAI-compatible server.

With `base_url` the same module serves any OpenAI-compatible server (Ollama, LM Studio,
llama.cpp's server, vLLM); those usually need no key, so the key is only required when
talking to OpenAI itself.

The request goes out through httpx (`bridge.providers.http.open_stream`) and the SSE body is
read by `bridge.providers.llm._chat_stream`, not through the `openai` SDK: profiled against
the fake on 127.0.0.1, the SDK spent ~1 ms opening each request and ~0.15 ms of CPU on
every chunk (a pydantic model each), which alone would take more than a core at 200 talking
characters. The wire format is small and documented; `tests/providers/test_llm_openai.py`
holds this module to it, errors and faults included.

Retries follow `bridge.providers.http.with_retries`, so every HTTP module obeys the same
`max_retries` / `max_retry_after` options (OpenAI's ``retry-after-ms`` is honoured) and a
game never waits on a hidden backoff.

Options: `model`, `base_url`, `api_key` / `api_key_env`, `timeout` (s, each wait for bytes),
`connect_timeout`, `max_retries`, `max_retry_after`, `temperature`, `max_tokens`, `top_p`,
`stop`, `extra_body` (a table merged into the request, for a server's own extras), and `tools`
(default true: a character's registered actions are offered as function tools and the
streamed tool calls are read; false lists them in the prompt for the inline syntax).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import trio

from bridge.providers.base import ConfigError, LLMRequest, ProviderError, ToolCall
from bridge.providers.http import make_client, open_stream
from bridge.providers.llm._chat_stream import chat_deltas
from bridge.providers.llm._common import CLOSE_TIMEOUT_S, closing_deltas, openai_messages, redacted, sampling
from bridge.providers.registry import ModuleSpec

DEFAULT_MODEL = "gpt-4o-mini"
DEFAULT_BASE_URL = "https://api.openai.com/v1"


class OpenAIChatLLM:
    """One HTTP client per module (connections kept alive); each `stream` is one request."""

    def __init__(
        self,
        *,
        name: str,
        model: str,
        api_key: str | None,
        base_url: str | None,
        options: Mapping[str, Any],
    ) -> None:
        self.name = "openai"
        self.module = name
        #: Registered actions go out as `tools` (option `tools = false` for a compatible
        #: server that refuses them: the actions are then listed in the prompt instead).
        self.supports_tools = bool(options.get("tools", True))
        self.model = model
        self._api_key = api_key
        self._options = options
        self._label = "OpenAI" if base_url is None else f"OpenAI-compatible server at {base_url}"
        self._url = f"{base_url or DEFAULT_BASE_URL}/chat/completions"
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = make_client(options, headers=headers)

    def _body(self, request: LLMRequest) -> dict[str, Any]:
        extra = self._options.get("extra_body") or {}
        body = {
            **{k: v for k, v in extra.items() if k not in ("messages", "stream")},
            "model": str(request.options.get("model") or self.model),
            "messages": openai_messages(request.messages),
            "stream": True,
            **sampling(self._options, request.options),
        }
        if request.tools and self.supports_tools:
            body["tools"] = [dict(tool) for tool in request.tools]
        return body

    @asynccontextmanager
    async def stream(self, request: LLMRequest) -> AsyncIterator[AsyncIterator[str | ToolCall]]:
        async with AsyncExitStack() as stack:
            try:
                response = await stack.enter_async_context(
                    open_stream(self._client, self._label, "POST", self._url, self._options, json=self._body(request), lean=True)
                )
            except ProviderError as exc:
                raise redacted(exc, self._api_key) from None
            async with closing_deltas(chat_deltas(response, self._label, self._api_key)) as deltas:
                yield deltas
            # leaving the stack closes the response (shielded, in open_stream)

    async def aclose(self) -> None:
        with trio.move_on_after(CLOSE_TIMEOUT_S) as scope:
            scope.shield = True
            await self._client.aclose()


def create(spec: ModuleSpec) -> OpenAIChatLLM:
    options = spec.options
    base_url = options.get("base_url")
    if base_url is not None and (not isinstance(base_url, str) or not base_url.startswith(("http://", "https://"))):
        raise ConfigError(f"module {spec.name!r}: `base_url` must be an http(s) URL, got {base_url!r}")
    model = options.get("model", DEFAULT_MODEL)
    if not isinstance(model, str) or not model:
        raise ConfigError(f"module {spec.name!r}: `model` must be a non-empty string")
    extra = options.get("extra_body")
    if extra is not None and not isinstance(extra, Mapping):
        raise ConfigError(f"module {spec.name!r}: `extra_body` must be a table")
    # OpenAI itself always needs a key; a compatible server at `base_url` may not.
    api_key = spec.secret("api_key", required=base_url is None)
    return OpenAIChatLLM(
        name=spec.name,
        model=model,
        api_key=api_key,
        base_url=base_url.rstrip("/") if base_url else None,
        options=options,
    )

