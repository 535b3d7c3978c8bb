"""`openai`: streaming chat completions through the official `openai` SDK.

With `base_url` the same module serves any OpenAI-compatible server (Ollama, LM Studio,
llama.cpp's server, vLLM); those usually need no key, so the key is only required when
talking to OpenAI itself.

Retries are ours, not the SDK's: the SDK is built with ``max_retries=0`` and a 429/503 goes
through `bridge.providers.http.with_retries`, so every HTTP module obeys the same
`max_retries` / `max_retry_after` options and a game never waits on a hidden backoff.

Options: `model`, `base_url`, `api_key` / `api_key_env`, `timeout` (s, each wait for bytes),
`connect_timeout`, `max_retries`, `max_retry_after`, `temperature`, `max_tokens`, `top_p`,
`stop`, and `extra_body` (a table merged into the request, for a server's own extras).
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import httpx2
import openai
import trio

from bridge.providers.base import ConfigError, LLMRequest, ProviderError
from bridge.providers.http import (
    DEFAULT_CONNECT_TIMEOUT_S,
    DEFAULT_TIMEOUT_S,
    parse_retry_after,
    status_error,
    with_retries,
)
from bridge.providers.llm._common import (
    CLOSE_TIMEOUT_S,
    closing_deltas,
    empty_reply,
    malformed,
    openai_messages,
    redacted,
    sampling,
)
from bridge.providers.registry import ModuleSpec

DEFAULT_MODEL = "gpt-4o-mini"
# Sent when a compatible server needs no key: the SDK insists on one, and an explicit value
# stops it falling back to OPENAI_API_KEY and handing the user's real key to a local server.
NO_KEY = "no-key-configured"


class OpenAIChatLLM:
    """One SDK client per module; each `stream` is one chat completion request."""

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
        self.model = model
        self._api_key = api_key
        self._options = options
        self._label = "OpenAI" if base_url is None else f"OpenAI-compatible server at {base_url}"
        timeout = httpx2.Timeout(
            float(options.get("timeout", DEFAULT_TIMEOUT_S)),
            connect=float(options.get("connect_timeout", DEFAULT_CONNECT_TIMEOUT_S)),
        )
        self._client = openai.AsyncOpenAI(
            api_key=api_key or NO_KEY,
            base_url=base_url,
            timeout=timeout,
            max_retries=0,
        )

    # ------------------------------------------------------------------ request

    def _body(self, request: LLMRequest) -> dict[str, Any]:
        extra = self._options.get("extra_body")
        params = sampling(self._options, request.options)
        return {
            "model": str(request.options.get("model") or self.model),
            "messages": openai_messages(request.messages),
            **params,
            **({"extra_body": dict(extra)} if extra else {}),
        }

    async def _open(self, body: Mapping[str, Any]) -> Any:
        """Send the request; return the SDK's AsyncStream once the response head is in."""

        async def attempt() -> Any:
            try:
                return await self._client.chat.completions.create(stream=True, **body)
            except openai.APIStatusError as exc:
                raise self._status_error(exc) from None
            except openai.APITimeoutError as exc:
                if isinstance(exc.__cause__, httpx2.ConnectTimeout):
                    raise ProviderError("backend_unavailable", f"cannot reach {self._label}: connect timed out") from None
                raise ProviderError("timeout", f"{self._label} did not answer in time") from None
            except openai.APIConnectionError as exc:
                cause = exc.__cause__
                detail = f"{type(cause).__name__}: {cause}" if cause else exc.message
                raise ProviderError("backend_unavailable", f"cannot reach {self._label}: {detail}") from None
            except openai.OpenAIError as exc:
                raise ProviderError("backend_error", f"{self._label} request failed: {exc}") from None

        try:
            return await with_retries(self._label, attempt, self._options)
        except ProviderError as exc:
            raise redacted(exc, self._api_key) from None

    def _status_error(self, exc: openai.APIStatusError) -> ProviderError:
        response = exc.response
        try:
            message_body: str = response.text
        except httpx2.ResponseNotRead:
            message_body = exc.message
        retry_after = None
        if response.status_code in (429, 503):
            retry_after = _retry_after(response.headers)
        error = status_error(self._label, response.status_code, message_body or exc.message, retry_after)
        return redacted(error, self._api_key)

    # ------------------------------------------------------------------ stream

    async def _deltas(self, sdk_stream: Any) -> AsyncIterator[str]:
        got_text = False
        finish: str | None = None
        while True:
            try:
                chunk = await sdk_stream.__anext__()
            except StopAsyncIteration:
                break
            except openai.APITimeoutError:
                raise ProviderError("timeout", f"{self._label} stopped sending mid-reply") from None
            except openai.APIConnectionError:
                raise ProviderError("backend_error", f"{self._label} dropped the connection mid-reply") from None
            except openai.APIError as exc:  # an `{"error": ...}` event inside the stream
                raise redacted(ProviderError("backend_error", f"{self._label} failed mid-reply: {exc.message}"), self._api_key) from None
            except ValueError as exc:  # the SDK's json.loads on a broken `data:` line
                raise malformed(self._label, f"bad JSON ({exc})") from None
            choices = getattr(chunk, "choices", None)
            if not isinstance(choices, list):
                raise malformed(self._label, "a chunk without `choices`")
            for choice in choices:
                if getattr(choice, "index", 0) != 0:
                    continue
                delta = getattr(choice, "delta", None)
                content = getattr(delta, "content", None)
                if isinstance(content, str) and content:
                    got_text = True
                    yield content
                finish = getattr(choice, "finish_reason", None) or finish
        if not got_text:
            raise empty_reply(self._label, f"finish_reason={finish}" if finish else "")

    @asynccontextmanager
    async def stream(self, request: LLMRequest) -> AsyncIterator[AsyncIterator[str]]:
        sdk_stream = await self._open(self._body(request))
        try:
            async with closing_deltas(self._deltas(sdk_stream)) as deltas:
                yield deltas
        finally:
            with trio.move_on_after(CLOSE_TIMEOUT_S) as scope:
                scope.shield = True
                await sdk_stream.close()

    async def aclose(self) -> None:
        with trio.move_on_after(CLOSE_TIMEOUT_S) as scope:
            scope.shield = True
            await self._client.close()


def _retry_after(headers: Mapping[str, str]) -> float:
    """Seconds to wait from `retry-after-ms` (OpenAI's) or `retry-after`; 1 s if neither."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            value = float(millis) / 1000
            if math.isfinite(value) and value >= 0:
                return value
        except ValueError:
            pass
    seconds = parse_retry_after(headers.get("retry-after"))
    return 1.0 if seconds is None else seconds


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

