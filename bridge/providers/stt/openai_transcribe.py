"""`openai`: speech-to-text through OpenAI's `POST /v1/audio/transcriptions`.

The request is multipart: the utterance as `file` (a 16 kHz WAV), `model`, and optionally
`language` and `prompt` (names and words the game expects help Whisper spell them).
`whisper-1` is asked for `verbose_json` with `timestamp_granularities[]=word`, which gives
word timings; the `gpt-4o-transcribe` models only answer `json` (text, no timings), so
that is what they are asked for. Any OpenAI-compatible server works through `base_url`.

Errors come as ``{"error": {"message", "type", "param", "code"}}``; 429 and 503 are retried
(bounded) after their Retry-After, by `bridge.providers.http`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import httpx
import numpy as np

from bridge.providers import http
from bridge.providers.base import ConfigError, ProviderError, TimedUnit, Transcript
from bridge.providers.registry import ModuleSpec
from bridge.providers.stt.upload import (
    MIN_AUDIO_S,
    language_code,
    post_for_json,
    timed_seconds,
    utterance_wav,
)

PROVIDER = "OpenAI transcription"
DEFAULT_BASE_URL = "https://api.openai.com/v1"
MODELS = ("whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-transcribe")
WORD_TIMING_MODELS = frozenset({"whisper-1"})


class OpenAITranscribeSTT:
    """An `STT` that uploads each utterance to an OpenAI(-compatible) transcription endpoint."""

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        model: str = "whisper-1",
        language: str | None = None,
        prompt: str | None = None,
        options: dict[str, Any] | None = None,
    ) -> None:
        self.name = "openai"
        self._api_key = api_key
        self.url = base_url.rstrip("/") + "/audio/transcriptions"
        self.model = model
        self.language = language
        self.prompt = prompt
        self.options = dict(options or {})
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = http.make_client(self.options)
        return self._client

    def form_fields(self) -> dict[str, Any]:
        """The non-file multipart fields for this module's model."""
        fields: dict[str, Any] = {"model": self.model}
        if self.language:
            fields["language"] = self.language
        if self.prompt:
            fields["prompt"] = self.prompt
        if self.model in WORD_TIMING_MODELS:
            fields["response_format"] = "verbose_json"
            fields["timestamp_granularities[]"] = ["word"]
        else:
            fields["response_format"] = "json"
        return fields

    async def transcribe(self, samples: np.ndarray, sample_rate: int) -> Transcript:
        wav, duration = utterance_wav(samples, sample_rate)
        if duration < MIN_AUDIO_S:
            return Transcript(text="", language=self.language)
        body = await post_for_json(
            self._http(),
            PROVIDER,
            self.url,
            self.options,
            [self._api_key],
            headers={"Authorization": f"Bearer {self._api_key}"},
            data=self.form_fields(),
            files={"file": ("utterance.wav", wav, "audio/wav")},
        )
        return parse_transcription(body, self.language)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def parse_transcription(body: Any, language: str | None = None) -> Transcript:
    """A Transcript from a `json` or `verbose_json` answer (words only in the latter)."""
    if not isinstance(body, dict) or not isinstance(body.get("text"), str):
        raise ProviderError("backend_error", f"{PROVIDER} answered without a `text` field: {str(body)[:200]}")
    words: list[TimedUnit] = []
    for item in body.get("words") or ():
        if not isinstance(item, dict) or not isinstance(item.get("word"), str):
            continue
        start, end = timed_seconds(item.get("start")), timed_seconds(item.get("end"))
        if start is None or end is None:
            continue
        words.append(TimedUnit(item["word"].strip(), start * 1000.0, end * 1000.0))
    return Transcript(text=body["text"].strip(), words=words, language=language_code(body.get("language")) or language)


def create(spec: ModuleSpec) -> OpenAITranscribeSTT:
    if "api_key" not in spec.options and "api_key_env" not in spec.options:
        spec = replace(spec, options={**spec.options, "api_key_env": "OPENAI_API_KEY"})
    api_key = spec.secret("api_key")
    assert api_key is not None
    model = str(spec.option("model", "whisper-1"))
    if model not in MODELS and not spec.option("allow_any_model", False):
        raise ConfigError(
            f"module {spec.name!r} (openai stt): unknown model {model!r}; one of {', '.join(MODELS)} "
            "(set allow_any_model = true for an OpenAI-compatible server with other names)"
        )
    return OpenAITranscribeSTT(
        api_key=api_key,
        base_url=str(spec.option("base_url", DEFAULT_BASE_URL)),
        model=model,
        language=spec.option("language"),
        prompt=spec.option("prompt"),
        options={k: v for k, v in spec.options.items() if k != "api_key"},
    )
