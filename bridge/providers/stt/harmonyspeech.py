"""`harmonyspeech`: speech-to-text on a Harmony Speech Engine (self-hosted, port 12080).

Not an OpenAI drop-in despite the path: `POST /v1/audio/transcriptions` takes JSON with the
audio base64-encoded,

    {"model": "faster-whisper-large-v3-turbo", "input_audio": "<b64 wav>",
     "get_language": true, "get_timestamps": true}

and answers ``{"text", "language", "timestamps": [...]}``. The engine's timestamps have had
two shapes across versions: word items ``{"word", "start", "end"}``, or faster-whisper
segment objects with the words nested in ``"words"`` (sometimes each serialized as a JSON
string); all are read. Times are seconds. Errors are
``{"object": "error", "message", "type", "param", "code"}``. Auth, when the engine has it
enabled, is `Authorization: Bearer <key>`.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import numpy as np

from bridge.providers import http
from bridge.providers.base import ProviderError, TimedUnit, Transcript
from bridge.providers.registry import ModuleSpec
from bridge.providers.stt.upload import (
    MIN_AUDIO_S,
    language_code,
    post_for_json,
    scrub,
    timed_seconds,
    utterance_wav,
)

PROVIDER = "Harmony Speech"
DEFAULT_BASE_URL = "http://127.0.0.1:12080"
DEFAULT_MODEL = "faster-whisper-large-v3-turbo"


class HarmonySpeechSTT:
    """An `STT` that sends each utterance to a Harmony Speech Engine."""

    def __init__(
        self,
        *,
        base_url: str = DEFAULT_BASE_URL,
        model: str = DEFAULT_MODEL,
        api_key: str | None = None,
        options: dict[str, Any] | None = None,
    ) -> None:
        self.name = "harmonyspeech"
        root = base_url.rstrip("/")
        if root.endswith("/v1"):  # accept both the server root and its /v1
            root = root[: -len("/v1")]
        self.url = root + "/v1/audio/transcriptions"
        self.model = model
        self._api_key = api_key
        self.options = dict(options or {})
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = http.make_client(self.options)
        return self._client

    def payload(self, wav: bytes) -> dict[str, Any]:
        return {
            "model": self.model,
            "input_audio": base64.b64encode(wav).decode("ascii"),
            "get_language": True,
            "get_timestamps": True,
        }

    async def transcribe(self, samples: np.ndarray, sample_rate: int) -> Transcript:
        wav, duration = utterance_wav(samples, sample_rate)
        if duration < MIN_AUDIO_S:
            return Transcript(text="")
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        body = await post_for_json(
            self._http(), PROVIDER, self.url, self.options, [self._api_key], json=self.payload(wav), headers=headers
        )
        if isinstance(body, dict) and body.get("object") == "error":
            message = scrub(str(body.get("message") or "unknown error"), [self._api_key])
            raise ProviderError("backend_error", f"{PROVIDER} failed: {message}")
        return parse_transcription(body)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def _words_of(item: Any) -> list[TimedUnit]:
    if isinstance(item, str):  # some engine versions serialize each entry as a JSON string
        try:
            item = json.loads(item)
        except ValueError:
            return []
    if not isinstance(item, dict):
        return []
    nested = item.get("words")
    if isinstance(nested, list):
        return [unit for word in nested for unit in _words_of(word)]
    word = item.get("word")
    start, end = timed_seconds(item.get("start")), timed_seconds(item.get("end"))
    if not isinstance(word, str) or start is None or end is None:
        return []  # a segment without word timings: nothing to add at word level
    return [TimedUnit(word.strip(), start * 1000.0, end * 1000.0)]


def parse_transcription(body: Any) -> Transcript:
    if not isinstance(body, dict) or not isinstance(body.get("text"), str):
        raise ProviderError("backend_error", f"{PROVIDER} answered without a `text` field: {str(body)[:200]}")
    words = [unit for item in body.get("timestamps") or () for unit in _words_of(item)]
    return Transcript(text=body["text"].strip(), words=words, language=language_code(body.get("language")))


def create(spec: ModuleSpec) -> HarmonySpeechSTT:
    return HarmonySpeechSTT(
        base_url=str(spec.option("base_url", DEFAULT_BASE_URL)),
        model=str(spec.option("model", DEFAULT_MODEL)),
        api_key=spec.secret("api_key", required=False),
        options={k: v for k, v in spec.options.items() if k != "api_key"},
    )
