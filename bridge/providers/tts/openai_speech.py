"""`openai` TTS: OpenAI's ``POST /v1/audio/speech`` (or any server that speaks it).

    POST {base_url}/audio/speech   Authorization: Bearer <key>
    {"model", "input" (<= 4096 chars), "voice", "response_format", "speed"?, "instructions"?}
    -> 200 audio bytes, streamed as they are made; errors {"error": {"message", ...}}

The default ``response_format`` is ``pcm``: raw s16le mono at 24 kHz, which needs no decoder
and starts playing soonest. ``mp3``, ``opus``, ``aac``, ``flac`` and ``wav`` are decoded as
they arrive by `bridge.speech.decode`. OpenAI gives no timing, so pieces carry none; the
viseme stage estimates it.

Why httpx (through `bridge.providers.http`) rather than the ``openai`` SDK: the endpoint is
one POST returning bytes, so the SDK would add nothing but its own second layer of retries
and timeouts; going through `http.open_stream` gives this module the same 429/503
Retry-After policy, per-read timeout and error wording as every other HTTP backend, and
closing the response on cancellation closes the connection at once.

Texts longer than the 4096-character limit are split at sentence or word boundaries and
spoken as consecutive requests in one stream.

Config (`[modules.NAME]`, provider = "openai"): `api_key` / `api_key_env` (required for
api.openai.com, optional for other servers), `base_url` (default https://api.openai.com/v1),
`model` (tts-1 | tts-1-hd | gpt-4o-mini-tts, default gpt-4o-mini-tts), `voice` (default
alloy), `response_format` (default pcm), `sample_rate` (of `pcm`, default 24000; for
compatible servers that differ), `speed` (0.25..4), `instructions` (gpt-4o-mini-tts only),
`extra_body` (a table merged into each request, for compatible servers), `timeout` (s per
read, default 30), `connect_timeout` (s, default 5), `max_retries` (default 2),
`max_retry_after` (s, default 10). Per request, `TTSRequest.voice` and the options
`instructions` and `speed` override the configured ones.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import aclosing, asynccontextmanager
from typing import Any

import httpx
import trio

from bridge.media import phonemize
from bridge.media.decode import DecodeError, StreamDecoder, stream_decoder
from bridge.providers import http
from bridge.providers.base import ConfigError, ProviderError, SpeechAudio, TTSRequest
from bridge.providers.llm.ws_session import scrubbed_errors
from bridge.providers.registry import ModuleSpec

PROVIDER = "OpenAI"
DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_MODEL = "gpt-4o-mini-tts"
DEFAULT_VOICE = "alloy"
PCM_SAMPLE_RATE = 24000
MAX_INPUT_CHARS = 4096
FORMATS = ("pcm", "mp3", "opus", "aac", "flac", "wav")
_TEXTUAL = ("application/json", "text/")  # a body labelled so is an error, not audio
_SENTENCE_ENDS = (". ", "! ", "? ", "\n", "。")


def split_text(text: str, limit: int = MAX_INPUT_CHARS) -> list[str]:
    """``text`` in pieces of at most ``limit`` characters, cut after a sentence if possible,
    else at a space, else hard."""
    pieces: list[str] = []
    rest = text
    while len(rest) > limit:
        window = rest[:limit]
        cut = max(window.rfind(end) + len(end) for end in _SENTENCE_ENDS)
        if cut <= limit // 2:
            space = window.rfind(" ")
            cut = space + 1 if space > 0 else limit
        pieces.append(rest[:cut])
        rest = rest[cut:]
    if rest or not pieces:
        pieces.append(rest)
    return pieces


class OpenAISpeechTTS:
    """Speech from OpenAI's speech endpoint, streamed and decoded as it arrives."""

    #: Its audio carries no timing: the speaker starts espeak on the text with the request.
    timing = "none"

    def __init__(
        self,
        *,
        api_key: str | None,
        base_url: str = DEFAULT_BASE_URL,
        model: str = DEFAULT_MODEL,
        voice: str = DEFAULT_VOICE,
        response_format: str = "pcm",
        sample_rate: int = PCM_SAMPLE_RATE,
        speed: float | None = None,
        instructions: str | None = None,
        extra_body: Mapping[str, Any] | None = None,
        http_options: Mapping[str, Any] | None = None,
    ) -> None:
        if response_format not in FORMATS:
            raise ConfigError(f"OpenAI TTS response_format {response_format!r}: use one of {', '.join(FORMATS)}")
        if speed is not None and not 0.25 <= float(speed) <= 4.0:
            raise ConfigError(f"OpenAI TTS speed {speed} is outside 0.25..4.0")
        self.name = "openai"
        self._api_key = api_key
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.voice = voice
        self.response_format = response_format
        self.sample_rate = sample_rate
        self.speed = speed
        self.instructions = instructions
        self.extra_body = dict(extra_body or {})
        self.http_options = dict(http_options or {})
        self._http: httpx.AsyncClient | None = None

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = http.make_client(self.http_options)
        return self._http

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}

    def request_body(self, text: str, request: TTSRequest) -> dict[str, Any]:
        """The JSON body for one request (public so tests and tools can see what is sent)."""
        opts = request.options
        body: dict[str, Any] = {
            **self.extra_body,
            "model": self.model,
            "input": text,
            "voice": request.voice or self.voice,
            "response_format": self.response_format,
        }
        speed = opts.get("speed", self.speed)
        if speed is not None:
            body["speed"] = float(speed)
        instructions = opts.get("instructions", self.instructions)
        if instructions:
            body["instructions"] = str(instructions)
        return body

    def _decoder(self) -> StreamDecoder:
        return stream_decoder(self.response_format, self.sample_rate)

    @asynccontextmanager
    async def _open(self, body: Mapping[str, Any]) -> AsyncIterator[httpx.Response]:
        async with http.open_stream(
            self._client(),
            PROVIDER,
            "POST",
            f"{self.base_url}/audio/speech",
            self.http_options,
            json=body,
            headers=self._headers(),
            lean=True,
        ) as response:
            content_type = response.headers.get("content-type", "")
            if content_type.startswith(_TEXTUAL):
                # A 200 with a JSON or text body is an error some compatible servers send.
                try:
                    raw = await response.aread()
                except httpx.HTTPError as exc:
                    raise http.transport_error(PROVIDER, exc) from None
                message = http.error_message_from_body(raw[:2000])
                raise ProviderError("backend_error", f"{PROVIDER} answered with {content_type} instead of audio: {message}")
            yield response

    async def _speech(self, response: httpx.Response) -> AsyncIterator[SpeechAudio]:
        """One response's audio as SpeechAudio pieces, decoded as the bytes arrive."""
        decoder = self._decoder()
        try:
            async with aclosing(http.body_chunks(response)) as chunks:
                async for chunk in chunks:
                    samples = decoder.feed(chunk)
                    if len(samples):
                        yield SpeechAudio(samples=samples, sample_rate=decoder.sample_rate or self.sample_rate)
            await response.aclose()  # read to its end: the connection goes back to the pool now
            tail = decoder.flush()
        except httpx.HTTPError as exc:
            raise http.transport_error(PROVIDER, exc) from None
        except DecodeError as exc:
            raise ProviderError(
                "backend_error", f"{PROVIDER} sent audio that is not valid {self.response_format}: {exc}"
            ) from None
        if len(tail):
            yield SpeechAudio(samples=tail, sample_rate=decoder.sample_rate or self.sample_rate)

    async def _pieces(self, first: httpx.Response, rest: list[dict[str, Any]]) -> AsyncIterator[SpeechAudio]:
        async with aclosing(self._speech(first)) as speech:
            async for piece in speech:
                yield piece
        for body in rest:  # the parts of a text over the input limit, one request each
            async with self._open(body) as response, aclosing(self._speech(response)) as speech:
                async for piece in speech:
                    yield piece

    @asynccontextmanager
    async def synthesize(self, request: TTSRequest) -> AsyncIterator[AsyncIterator[SpeechAudio]]:
        """Open the speech stream; the first request is sent before this yields."""
        bodies = [self.request_body(text, request) for text in split_text(request.text)]
        async with scrubbed_errors([self._api_key]):
            async with self._open(bodies[0]) as first:
                # One generator layer less per piece for the usual text of one request.
                pieces = self._pieces(first, bodies[1:]) if len(bodies) > 1 else self._speech(first)
                try:
                    yield pieces
                finally:
                    with trio.CancelScope(shield=True):
                        await pieces.aclose()

    async def warm_up(self) -> None:
        """Before READY: the HTTP client, and espeak's workers for this untimed audio's visemes."""
        self._client()
        await trio.to_thread.run_sync(phonemize.warm_up_for_untimed_voices)

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None


def create(spec: ModuleSpec) -> OpenAISpeechTTS:
    base_url = str(spec.option("base_url", DEFAULT_BASE_URL))
    official = base_url.rstrip("/") == DEFAULT_BASE_URL
    extra_body = spec.option("extra_body") or {}
    if not isinstance(extra_body, Mapping):
        raise ConfigError(f"module {spec.name!r}: `extra_body` must be a table")
    return OpenAISpeechTTS(
        api_key=spec.secret("api_key", required=official),
        base_url=base_url,
        model=str(spec.option("model", DEFAULT_MODEL)),
        voice=str(spec.option("voice", DEFAULT_VOICE)),
        response_format=str(spec.option("response_format", "pcm")),
        sample_rate=int(spec.option("sample_rate", PCM_SAMPLE_RATE)),
        speed=spec.option("speed"),
        instructions=spec.option("instructions"),
        extra_body=extra_body,
        http_options=spec.options,
    )
