"""Small pieces the LLM modules share: chat messages in OpenAI's shape, sampling options,
keeping secrets out of error messages, and the "empty reply" rule.

Kept apart from `bridge/providers/http.py` because these know about chat, not HTTP.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import trio

from bridge.providers.base import ChatMessage, ConfigError, ProviderError

# Sampling options a module reads from its config, which a single request may override.
SAMPLING_KEYS = ("temperature", "max_tokens", "top_p", "stop")


def openai_messages(messages: Sequence[ChatMessage]) -> list[dict[str, str]]:
    """Chat messages as the OpenAI wire format wants them (`name` only when set)."""
    out: list[dict[str, str]] = []
    for message in messages:
        item = {"role": message.role, "content": message.content}
        if message.name:
            item["name"] = message.name
        out.append(item)
    return out


def sampling(options: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The sampling options that are set, a request's own values winning over the config's."""
    merged = {k: options[k] for k in SAMPLING_KEYS if options.get(k) is not None}
    merged.update({k: overrides[k] for k in SAMPLING_KEYS if overrides.get(k) is not None})
    return merged


def redact(text: str, secret: str | None) -> str:
    """`text` with every occurrence of `secret` masked.

    Providers sometimes quote the credential they rejected; the message travels on to the
    game's developer and into logs, so the key must not ride along.
    """
    if secret and len(secret) >= 4 and secret in text:
        return text.replace(secret, "***")
    return text


def redacted(exc: ProviderError, secret: str | None) -> ProviderError:
    """`exc` itself if it does not mention `secret`, else a copy that does not."""
    message = redact(exc.message, secret)
    if message == exc.message:
        return exc
    return ProviderError(exc.code, message, retry_after=exc.retry_after)


def empty_reply(provider: str, detail: str = "") -> ProviderError:
    suffix = f" ({detail})" if detail else ""
    return ProviderError("backend_error", f"{provider} returned an empty reply{suffix}")


def malformed(provider: str, what: str) -> ProviderError:
    return ProviderError("backend_error", f"{provider} sent a malformed stream: {what}")


def require_str(module: str, options: Mapping[str, Any], key: str) -> str:
    value = options.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"module {module!r}: option `{key}` is required (a non-empty string)")
    return value


def optional_str(module: str, options: Mapping[str, Any], key: str) -> str | None:
    value = options.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(f"module {module!r}: option `{key}` must be a string, not {type(value).__name__}")
    return value


#: Bound on closing a reply stream (and its HTTP response) after the turn ended or was cancelled.
CLOSE_TIMEOUT_S = 2.0


@asynccontextmanager
async def closing_deltas(deltas: AsyncGenerator[Any, None]) -> AsyncIterator[AsyncGenerator[Any, None]]:
    """Hand out a delta stream and close it on the way out, even when the turn was cancelled.

    Shielded and bounded: a cancelled turn must still close the upstream response, or the
    server keeps generating (and billing) a reply nobody reads.
    """
    try:
        yield deltas
    finally:
        with trio.move_on_after(CLOSE_TIMEOUT_S) as scope:
            scope.shield = True
            await deltas.aclose()
