"""`harmonyspeech` TTS: a Harmony Speech Engine (self-hosted; harmony-ai-solutions).

    POST {base_url}/v1/audio/speech     Authorization: Bearer <key> (only if the engine wants one)
    {"model", "input", "mode": "single_speaker_tts" | "voice_cloning", "language", "voice",
     "input_audio" (b64 clip), "input_embedding" (b64), "generation_options": {...},
     "output_options": {"format": "wav", "sample_rate"}}
    -> {"id": "tts-..", "model", "created", "data": <b64 WAV>}
    POST {base_url}/v1/embed/speaker    {"model", "input_audio"} -> {"data": <b64 embedding>}
    errors {"object": "error", "message", "type", "param", "code"} (400 for validation)

Not an OpenAI drop-in: JSON with base64 audio both ways, and no streaming, so a request
yields one `SpeechAudio` holding the whole utterance once the engine has made it. There is
no timing either.

Voice cloning speaks with the voice of a speaker embedding. Give it as `embedding` (base64
text) or `embedding_file` (a file of base64 text, or raw embedding bytes), or give a
`reference_audio` clip: by default the clip is turned into an embedding once, by
``/v1/embed/speaker``, and the embedding is reused for every request after (much less to
send, and the engine skips the encoder); with `embed_reference = false` the clip itself
goes with each request. Files are read when the module is created, so a wrong path is a
start-up error.

Config (`[modules.NAME]`, provider = "harmonyspeech"): `base_url` (default
http://127.0.0.1:12080), `api_key` / `api_key_env` (optional), `model` (default
harmonyspeech), `mode` (default voice_cloning when an embedding or clip is configured,
else single_speaker_tts), `voice`, `language`, `embedding`, `embedding_file`,
`reference_audio`, `embed_reference` (default true), `embed_model` (default `model`),
`generation_options` (table: seed, style, speed, pitch, energy, ...), `sample_rate`,
`timeout` (s, default 60: the engine answers only when the whole clip is made),
`connect_timeout`, `max_retries`, `max_retry_after`. Per request, `TTSRequest.voice`
and the options `language` and `generation_options` (merged) override.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import trio

from bridge.media import phonemize
from bridge.media.decode import DecodeError, decode_audio
from bridge.providers import http
from bridge.providers.base import ConfigError, ProviderError, SpeechAudio, TTSRequest
from bridge.providers.llm.ws_session import scrubbed_errors
from bridge.providers.registry import ModuleSpec

PROVIDER = "Harmony Speech"
DEFAULT_BASE_URL = "http://127.0.0.1:12080"
DEFAULT_MODEL = "harmonyspeech"
DEFAULT_TIMEOUT_S = 60.0
MODES = ("single_speaker_tts", "voice_cloning")


def _is_b64(text: str) -> bool:
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return False
    return bool(text)


def read_embedding_file(path: Path) -> str:
    """An embedding file as base64 text: kept if it already is base64, encoded if raw bytes."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read speaker embedding {path}: {exc.strerror or exc}") from None
    try:
        text = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        text = ""
    if text and _is_b64(text):
        return text
    return base64.b64encode(raw).decode("ascii")


def read_clip(path: Path) -> str:
    try:
        return base64.b64encode(path.read_bytes()).decode("ascii")
    except OSError as exc:
        raise ConfigError(f"cannot read reference audio {path}: {exc.strerror or exc}") from None


class HarmonySpeechTTS:
    """Speech from a Harmony Speech Engine; one whole clip per request."""

    #: Its audio carries no timing: the speaker starts espeak on the text with the request.
    timing = "none"

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str = DEFAULT_BASE_URL,
        model: str = DEFAULT_MODEL,
        mode: str | None = None,
        voice: str | None = None,
        language: str | None = None,
        embedding: str | None = None,
        reference_clip: str | None = None,
        embed_reference: bool = True,
        embed_model: str | None = None,
        generation_options: Mapping[str, Any] | None = None,
        sample_rate: int | None = None,
        http_options: Mapping[str, Any] | None = None,
    ) -> None:
        cloning_source = embedding or reference_clip
        mode = mode or ("voice_cloning" if cloning_source else "single_speaker_tts")
        if mode not in MODES:
            raise ConfigError(f"Harmony Speech mode {mode!r}: use one of {', '.join(MODES)}")
        if mode == "voice_cloning" and not cloning_source:
            raise ConfigError("Harmony Speech voice_cloning needs `embedding`, `embedding_file` or `reference_audio`")
        if embedding is not None and not _is_b64(embedding):
            raise ConfigError("Harmony Speech `embedding` must be base64 text")
        self.name = "harmonyspeech"
        self._api_key = api_key
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.mode = mode
        self.voice = voice
        self.language = language
        self.embedding = embedding
        self.reference_clip = reference_clip
        self.embed_reference = embed_reference
        self.embed_model = embed_model or model
        self.generation_options = dict(generation_options or {})
        self.sample_rate = sample_rate
        self.http_options = {"timeout": DEFAULT_TIMEOUT_S, **dict(http_options or {})}
        self._http: httpx.AsyncClient | None = None
        self._embed_lock = trio.Lock()

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = http.make_client(self.http_options)
        return self._http

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}

    async def _post(self, path: str, body: Mapping[str, Any], what: str) -> dict[str, Any]:
        """POST JSON, retrying 429/503, and return the JSON object answered."""

        async def attempt() -> httpx.Response:
            try:
                response = await self._client().post(f"{self.base_url}{path}", json=body, headers=self._headers())
            except httpx.HTTPError as exc:
                raise http.transport_error(PROVIDER, exc) from None
            http.raise_for_status(PROVIDER, response, response.content)
            return response

        response = await http.with_retries(PROVIDER, attempt, self.http_options)
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict) or not isinstance(data.get("data"), str):
            raise ProviderError("backend_error", f"{PROVIDER} answered {what} without base64 `data`")
        return data

    async def speaker_embedding(self) -> str | None:
        """The embedding to clone with: configured, or made once from the reference clip."""
        if self.embedding is not None or self.reference_clip is None or not self.embed_reference:
            return self.embedding
        async with self._embed_lock:
            if self.embedding is None:
                reply = await self._post(
                    "/v1/embed/speaker",
                    {"model": self.embed_model, "input_audio": self.reference_clip},
                    "the speaker embedding",
                )
                if not _is_b64(reply["data"]):
                    raise ProviderError("backend_error", f"{PROVIDER} sent a speaker embedding that is not base64")
                self.embedding = reply["data"]
        return self.embedding

    async def request_body(self, request: TTSRequest) -> dict[str, Any]:
        opts = request.options
        body: dict[str, Any] = {"model": self.model, "input": request.text, "mode": self.mode}
        voice = request.voice or self.voice
        if voice:
            body["voice"] = voice
        language = opts.get("language", self.language)
        if language:
            body["language"] = str(language)
        if self.mode == "voice_cloning":
            embedding = await self.speaker_embedding()
            if embedding is not None:
                body["input_embedding"] = embedding
            else:
                body["input_audio"] = self.reference_clip
        generation = {**self.generation_options, **dict(opts.get("generation_options") or {})}
        if generation:
            body["generation_options"] = generation
        output: dict[str, Any] = {"format": "wav"}
        if self.sample_rate:
            output["sample_rate"] = int(self.sample_rate)
        body["output_options"] = output
        return body

    async def _speak(self, request: TTSRequest) -> SpeechAudio:
        body = await self.request_body(request)
        reply = await self._post("/v1/audio/speech", body, "the speech request")
        try:
            audio = base64.b64decode(reply["data"], validate=True)
        except (binascii.Error, ValueError):
            raise ProviderError("backend_error", f"{PROVIDER} sent audio that is not base64") from None
        try:
            decoded = decode_audio(audio)
        except DecodeError as exc:
            raise ProviderError("backend_error", f"{PROVIDER} sent audio that cannot be decoded: {exc}") from None
        return SpeechAudio(decoded.samples, decoded.sample_rate)

    @asynccontextmanager
    async def synthesize(self, request: TTSRequest) -> AsyncIterator[AsyncIterator[SpeechAudio]]:
        """The engine does not stream: the request is made on entry, the clip yielded once."""
        async with scrubbed_errors([self._api_key]):
            piece = await self._speak(request)

        async def one() -> AsyncIterator[SpeechAudio]:
            yield piece

        pieces = one()
        try:
            yield pieces
        finally:
            await pieces.aclose()

    async def warm_up(self) -> None:
        """Before READY: the HTTP client, and espeak's workers for this untimed audio's visemes."""
        self._client()
        await trio.to_thread.run_sync(phonemize.warm_up_for_untimed_voices)

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None


def create(spec: ModuleSpec) -> HarmonySpeechTTS:
    embedding = spec.option("embedding")
    if embedding is None and spec.option("embedding_file"):
        embedding = read_embedding_file(Path(str(spec.option("embedding_file"))).expanduser())
    clip = None
    if spec.option("reference_audio"):
        clip = read_clip(Path(str(spec.option("reference_audio"))).expanduser())
    generation = spec.option("generation_options") or {}
    if not isinstance(generation, Mapping):
        raise ConfigError(f"module {spec.name!r}: `generation_options` must be a table")
    rate = spec.option("sample_rate")
    return HarmonySpeechTTS(
        api_key=spec.secret("api_key", required=False),
        base_url=str(spec.option("base_url", DEFAULT_BASE_URL)),
        model=str(spec.option("model", DEFAULT_MODEL)),
        mode=spec.option("mode"),
        voice=spec.option("voice"),
        language=spec.option("language"),
        embedding=None if embedding is None else str(embedding).strip(),
        reference_clip=clip,
        embed_reference=bool(spec.option("embed_reference", True)),
        embed_model=spec.option("embed_model"),
        generation_options=generation,
        sample_rate=None if rate is None else int(rate),
        http_options=spec.options,
    )
