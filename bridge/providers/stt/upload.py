"""What the HTTP speech-to-text modules share: packing an utterance as WAV, posting it with
the team's timeouts and bounded retries (`bridge.providers.http`), reading a JSON answer,
and making sure no error they raise repeats an API key.

Each module keeps its own wire format (multipart for OpenAI, base64-in-JSON for Harmony
Speech); this file only knows "send audio, get JSON back".
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import httpx
import numpy as np

from bridge.media.pcm import TARGET_RATE, encode_wav, resample, to_int16
from bridge.providers import http
from bridge.providers.base import ProviderError

# Shorter than this is not an utterance; OpenAI refuses anything under 0.1 s anyway.
MIN_AUDIO_S = 0.1

# Whisper-style services name the language ("english"); the rest of the bridge uses ISO 639-1.
_LANGUAGE_CODES = {
    "english": "en", "german": "de", "french": "fr", "spanish": "es", "italian": "it",
    "portuguese": "pt", "dutch": "nl", "polish": "pl", "russian": "ru", "ukrainian": "uk",
    "japanese": "ja", "chinese": "zh", "korean": "ko", "turkish": "tr", "swedish": "sv",
}  # fmt: skip


def language_code(value: Any) -> str | None:
    """An ISO code for a language the backend named or coded; None when it said nothing."""
    if not isinstance(value, str) or not value:
        return None
    return _LANGUAGE_CODES.get(value.lower(), value)


def utterance_wav(samples: np.ndarray, sample_rate: int) -> tuple[bytes, float]:
    """The utterance as a 16 kHz mono WAV (what Whisper models use; a third of 48 kHz's size)
    and its duration in seconds."""
    audio = to_int16(np.asarray(samples).reshape(-1))
    if sample_rate != TARGET_RATE:
        audio = resample(audio, sample_rate, TARGET_RATE)
    return encode_wav(audio, TARGET_RATE), audio.size / TARGET_RATE


def scrub(message: str, secrets: Iterable[str | None]) -> str:
    """`message` with every secret replaced, in case a provider echoes what it was sent."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            message = message.replace(secret, "***")
    return message


def scrubbed(exc: ProviderError, secrets: Iterable[str | None]) -> ProviderError:
    clean = scrub(exc.message, secrets)
    if clean == exc.message:
        return exc
    return ProviderError(exc.code, clean, retry_after=exc.retry_after)


async def post_for_json(
    client: httpx.AsyncClient,
    provider: str,
    url: str,
    options: Mapping[str, Any],
    secrets: Iterable[str | None] = (),
    **request: Any,
) -> Any:
    """POST and return the parsed JSON body, or raise ProviderError (never leaking a secret).

    Error statuses, 429/503 retries and transport failures are mapped by
    `bridge.providers.http`; a 2xx body that is not JSON is a `backend_error` quoting the
    start of what came back.
    """
    secrets = list(secrets)
    try:
        async with http.open_stream(client, provider, "POST", url, options, **request) as response:
            try:
                body = await response.aread()
            except httpx.HTTPError as exc:
                raise http.transport_error(provider, exc) from None
    except ProviderError as exc:
        raise scrubbed(exc, secrets) from None
    try:
        return json.loads(body)
    except ValueError:
        snippet = scrub(body[:200].decode("utf-8", "replace"), secrets)
        raise ProviderError("backend_error", f"{provider} answered with something that is not JSON: {snippet!r}") from None


def timed_seconds(value: Any) -> float | None:
    """A number of seconds from a JSON field, or None when it is missing or not a number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)
