"""`elevenlabs` TTS: ElevenLabs' HTTP stream with character timestamps, through the official SDK.

    POST {base_url}/v1/text-to-speech/{voice_id}/stream/with-timestamps?output_format=pcm_24000
    xi-api-key: <key>     {"text", "model_id", "voice_settings"?, "language_code"?, ...}
    -> NDJSON lines {"audio_base64", "alignment": {"characters",
       "character_start_times_seconds", "character_end_times_seconds"}, "normalized_alignment"}
    errors {"detail": {"status", "message"}} (401 invalid_api_key, 404 voice_not_found,
    429 too_many_concurrent_requests / system_busy, ...)

The SDK's ``AsyncElevenLabs`` works under trio and takes a ``base_url``, so the tests point
it at a local fake. We use its raw-response variant: it raises ``ApiError`` when the status
arrives, before any audio, which lets `http.with_retries` retry 429/503 with the same
bounded Retry-After policy as every other module (the SDK itself does not retry streams).
One SDK quirk to know: it silently skips NDJSON lines that are not JSON; a stream that
yields no audio at all is reported as an error here.

Each line's audio is decoded as it arrives (``pcm_*`` by default: raw s16le, no decoder;
``mp3_*``, ``opus_*``, ``ulaw_8000``, ``alaw_8000`` via `bridge.speech.decode`) and its
character alignment becomes `TimedUnit`s in ms from the start of the utterance.
`CharTimeline` places them: ElevenLabs documents times per chunk without saying, for every
endpoint, whether they count from the chunk or from the utterance, so by default the first
chunk that starts later than 0 decides (``alignment_times = "auto"``); ``"absolute"`` or
``"chunk"`` force either reading. Times are made monotonic whatever the backend sends.

Config (`[modules.NAME]`, provider = "elevenlabs"): `api_key` / `api_key_env` (required),
`voice` (voice id; `TTSRequest.voice` overrides), `model` (default eleven_flash_v2_5),
`output_format` (default pcm_24000; pcm_{8000..48000}, mp3_*, opus_48000_*, ulaw_8000,
alaw_8000), `voice_settings` (table: stability, similarity_boost, style, use_speaker_boost,
speed), `language` (ISO 639-1 code), `alignment` ("original" or "normalized" text, default
original), `alignment_times` ("auto" | "absolute" | "chunk"), `optimize_streaming_latency`
(0..4), `base_url` (default https://api.elevenlabs.io), `timeout` (s per read, default
30), `connect_timeout` (s, default 5), `max_retries` (default 2), `max_retry_after` (s,
default 10). Per request, options `previous_text`, `next_text`, `seed` and `language` pass through.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import httpx
import numpy as np
import trio

from bridge.media.decode import DecodeError, StreamDecoder, stream_decoder
from bridge.providers import http
from bridge.providers.base import ConfigError, ProviderError, SpeechAudio, TimedUnit, TTSRequest
from bridge.providers.llm.ws_session import scrubbed_errors
from bridge.providers.registry import ModuleSpec

PROVIDER = "ElevenLabs"
DEFAULT_BASE_URL = "https://api.elevenlabs.io"
DEFAULT_MODEL = "eleven_flash_v2_5"
DEFAULT_OUTPUT_FORMAT = "pcm_24000"
ALIGNMENT_KINDS = ("original", "normalized")
ALIGNMENT_TIMES = ("auto", "absolute", "chunk")
VOICE_SETTING_KEYS = ("stability", "similarity_boost", "style", "use_speaker_boost", "speed")
EMPTY = np.zeros(0, dtype=np.int16)


# --------------------------------------------------------------------------- shared with the realtime module


def parse_output_format(output_format: str) -> tuple[str, int | None]:
    """``"pcm_24000"`` -> ("pcm", 24000); ``"mp3_44100_128"`` -> ("mp3", 44100); etc.

    Raises ConfigError for a format this bridge cannot decode.
    """
    codec, _, rest = output_format.partition("_")
    rate_text = rest.partition("_")[0]
    if codec not in ("pcm", "mp3", "opus", "ulaw", "alaw") or not rate_text.isdigit():
        raise ConfigError(
            f"ElevenLabs output_format {output_format!r} is not one this bridge decodes: "
            "use pcm_<rate>, mp3_<rate>_<kbps>, opus_48000_<kbps>, ulaw_8000 or alaw_8000"
        )
    return codec, int(rate_text)


def make_decoder(output_format: str) -> StreamDecoder:
    codec, rate = parse_output_format(output_format)
    return stream_decoder(codec, rate)


def decode_b64(data: str, what: str) -> bytes:
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise ProviderError("backend_error", f"{PROVIDER} sent {what} that is not valid base64") from None


class CharTimeline:
    """Places each chunk's character timings on the utterance's clock, monotonically.

    ``mode`` "absolute": times already count from the utterance start; "chunk": they count
    from the start of the chunk's own audio, so the audio already received is added;
    "auto": decided by the first chunk whose audio starts after 0 ms (a chunk-relative
    first time is far below where the chunk's audio starts; an absolute one is not).
    """

    def __init__(self, mode: str = "auto") -> None:
        if mode not in ALIGNMENT_TIMES:
            raise ConfigError(f"alignment_times {mode!r}: use one of {', '.join(ALIGNMENT_TIMES)}")
        self.mode = mode
        self.relative: bool | None = {"absolute": False, "chunk": True}.get(mode)
        self._last_start = 0.0
        self._last_end = 0.0

    def place(self, units: Sequence[TimedUnit], chunk_start_ms: float) -> list[TimedUnit]:
        if not units:
            return []
        if self.relative is None and chunk_start_ms > 50.0:
            self.relative = units[0].start_ms < chunk_start_ms / 2
        offset = chunk_start_ms if self.relative else 0.0
        placed: list[TimedUnit] = []
        for unit in units:
            start = max(unit.start_ms + offset, self._last_start)
            end = max(unit.end_ms + offset, start)
            self._last_start, self._last_end = start, max(end, self._last_end)
            placed.append(TimedUnit(unit.text, start, end))
        return placed


def _numbers(values: Any) -> list[float] | None:
    if not isinstance(values, list):
        return None
    try:
        return [float(v) for v in values]
    except (TypeError, ValueError):
        return None


def units_from_seconds(chars: Any, starts: Any, ends: Any) -> list[TimedUnit]:
    """HTTP alignment (``characters``, ``character_start/end_times_seconds``) to TimedUnits (ms)."""
    start_s, end_s = _numbers(starts), _numbers(ends)
    if not isinstance(chars, list) or start_s is None or end_s is None:
        return []
    return [TimedUnit(str(c), s * 1000.0, e * 1000.0) for c, s, e in zip(chars, start_s, end_s, strict=False)]


def units_from_ms(chars: Any, starts: Any, durations: Any) -> list[TimedUnit]:
    """WebSocket alignment (``chars``, ``charStartTimesMs``, ``charDurationsMs``) to TimedUnits."""
    start_ms, dur_ms = _numbers(starts), _numbers(durations)
    if not isinstance(chars, list) or start_ms is None or dur_ms is None:
        return []
    return [TimedUnit(str(c), s, s + d) for c, s, d in zip(chars, start_ms, dur_ms, strict=False)]


def api_error_message(body: Any) -> str:
    text = body if isinstance(body, (str, bytes)) else json.dumps(body, default=str)
    return http.error_message_from_body(text)


def voice_settings_from(value: Any, where: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: `voice_settings` must be a table")
    unknown = sorted(set(value) - set(VOICE_SETTING_KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown voice_settings {', '.join(unknown)}; known: {', '.join(VOICE_SETTING_KEYS)}")
    return dict(value)


# --------------------------------------------------------------------------- HTTP module


class ElevenLabsTTS:
    """Speech with character timings from ElevenLabs' HTTP streaming endpoint."""

    def __init__(
        self,
        *,
        api_key: str,
        voice: str | None,
        base_url: str = DEFAULT_BASE_URL,
        model: str = DEFAULT_MODEL,
        output_format: str = DEFAULT_OUTPUT_FORMAT,
        voice_settings: Mapping[str, Any] | None = None,
        language: str | None = None,
        alignment: str = "original",
        alignment_times: str = "auto",
        optimize_streaming_latency: int | None = None,
        http_options: Mapping[str, Any] | None = None,
    ) -> None:
        parse_output_format(output_format)
        if alignment not in ALIGNMENT_KINDS:
            raise ConfigError(f"ElevenLabs alignment {alignment!r}: use one of {', '.join(ALIGNMENT_KINDS)}")
        CharTimeline(alignment_times)  # validates
        self.name = "elevenlabs"
        self._api_key = api_key
        self.voice = voice
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.output_format = output_format
        self.voice_settings = dict(voice_settings) if voice_settings else None
        self.language = language
        self.alignment = alignment
        self.alignment_times = alignment_times
        self.optimize_streaming_latency = optimize_streaming_latency
        self.http_options = dict(http_options or {})
        self._http: httpx.AsyncClient | None = None
        self._sdk: Any = None

    def _client(self) -> Any:
        if self._sdk is None:
            from elevenlabs import AsyncElevenLabs  # imported on first use: the SDK is large

            self._http = http.make_client(self.http_options)
            self._sdk = AsyncElevenLabs(api_key=self._api_key, base_url=self.base_url, httpx_client=self._http)
        return self._sdk

    def request_kwargs(self, request: TTSRequest) -> dict[str, Any]:
        """Arguments for the SDK's ``stream_with_timestamps`` (public so tests can see them)."""
        from elevenlabs import VoiceSettings

        voice = request.voice or self.voice
        if not voice:
            raise ProviderError("backend_error", f"{PROVIDER}: no voice id configured or requested")
        opts = request.options
        kwargs: dict[str, Any] = {
            "voice_id": voice,
            "text": request.text,
            "model_id": self.model,
            "output_format": self.output_format,
        }
        if self.voice_settings:
            kwargs["voice_settings"] = VoiceSettings(**self.voice_settings)
        language = opts.get("language", self.language)
        if language:
            kwargs["language_code"] = str(language)
        if self.optimize_streaming_latency is not None:
            kwargs["optimize_streaming_latency"] = int(self.optimize_streaming_latency)
        for key in ("previous_text", "next_text", "seed"):
            if opts.get(key) is not None:
                kwargs[key] = opts[key]
        # The SDK hands this straight to httpx; an httpx.Timeout keeps connect and read apart
        # (a bare number would set both). Retries are ours, so the SDK's are off.
        kwargs["request_options"] = {"timeout_in_seconds": http.make_timeout(self.http_options), "max_retries": 0}
        return kwargs

    def _error(self, exc: Exception) -> ProviderError:
        from elevenlabs.core.api_error import ApiError

        if isinstance(exc, ApiError):
            status = int(exc.status_code or 0)
            retry_after = None
            if status in http.RETRYABLE_STATUS:
                retry_after = http.retry_after_from({k.lower(): v for k, v in (exc.headers or {}).items()})
            return http.status_error(PROVIDER, status, api_error_message(exc.body), retry_after)
        if isinstance(exc, httpx.HTTPError):
            return http.transport_error(PROVIDER, exc)
        return ProviderError("backend_error", f"{PROVIDER} request failed: {type(exc).__name__}: {exc}")

    async def _open(self, stack: AsyncExitStack, kwargs: Mapping[str, Any]) -> AsyncIterator[Any]:
        """Send the request (retrying 429/503) and return the iterator of parsed chunks."""
        from elevenlabs.core.api_error import ApiError

        raw = self._client().text_to_speech.with_raw_response

        async def attempt() -> AsyncIterator[Any]:
            try:
                response = await stack.enter_async_context(raw.stream_with_timestamps(**kwargs))
            except (ApiError, httpx.HTTPError) as exc:
                raise self._error(exc) from None
            return response.data

        return await http.with_retries(PROVIDER, attempt, self.http_options)

    def _units(self, chunk: Any) -> list[TimedUnit]:
        alignment = chunk.normalized_alignment if self.alignment == "normalized" else chunk.alignment
        alignment = alignment or chunk.alignment or chunk.normalized_alignment
        if alignment is None:
            return []
        return units_from_seconds(
            getattr(alignment, "characters", None),
            getattr(alignment, "character_start_times_seconds", None),
            getattr(alignment, "character_end_times_seconds", None),
        )

    async def _pieces(self, chunks: AsyncIterator[Any]) -> AsyncIterator[SpeechAudio]:
        decoder = make_decoder(self.output_format)
        timeline = CharTimeline(self.alignment_times)
        _, nominal_rate = parse_output_format(self.output_format)
        samples_out = 0
        pending: list[TimedUnit] = []  # timings whose audio has not decoded yet (compressed formats)
        lines = 0
        try:
            async for chunk in chunks:
                lines += 1
                audio = decode_b64(getattr(chunk, "audio_base_64", None) or "", "audio")
                rate = decoder.sample_rate or nominal_rate or 1
                pending += timeline.place(self._units(chunk), samples_out * 1000.0 / rate)
                samples = decoder.feed(audio) if audio else EMPTY
                if len(samples):
                    samples_out += len(samples)
                    yield SpeechAudio(samples, decoder.sample_rate or rate, characters=pending)
                    pending = []
            tail = decoder.flush() if lines else EMPTY
        except httpx.HTTPError as exc:
            raise http.transport_error(PROVIDER, exc) from None
        except DecodeError as exc:
            raise ProviderError("backend_error", f"{PROVIDER} sent audio that is not valid {self.output_format}: {exc}") from None
        if not samples_out and not len(tail):
            raise ProviderError("backend_error", f"{PROVIDER} ended the stream without any audio ({lines} chunks)")
        if len(tail) or pending:
            yield SpeechAudio(tail, decoder.sample_rate or nominal_rate or 0, characters=pending)

    @asynccontextmanager
    async def synthesize(self, request: TTSRequest) -> AsyncIterator[AsyncIterator[SpeechAudio]]:
        """Open the stream; the request is answered (status known) before this yields."""
        kwargs = self.request_kwargs(request)
        async with scrubbed_errors([self._api_key]):
            stack = AsyncExitStack()
            try:
                chunks = await self._open(stack, kwargs)
                pieces = self._pieces(chunks)
                try:
                    yield pieces
                finally:
                    with trio.CancelScope(shield=True):
                        await pieces.aclose()
                        await chunks.aclose()  # the SDK's line parser, an async generator
            finally:
                with trio.CancelScope(shield=True):
                    await stack.aclose()  # closes the HTTP response, and so the connection

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None
            self._sdk = None


def common_options(spec: ModuleSpec) -> dict[str, Any]:
    """The options `elevenlabs` and `elevenlabs_realtime` share, read and checked."""
    where = f"module {spec.name!r}"
    return {
        "voice": spec.option("voice"),
        "model": str(spec.option("model", DEFAULT_MODEL)),
        "output_format": str(spec.option("output_format", DEFAULT_OUTPUT_FORMAT)),
        "voice_settings": voice_settings_from(spec.option("voice_settings"), where),
        "language": spec.option("language"),
        "alignment": str(spec.option("alignment", "original")),
        "alignment_times": str(spec.option("alignment_times", "auto")),
    }


def create(spec: ModuleSpec) -> ElevenLabsTTS:
    latency = spec.option("optimize_streaming_latency")
    return ElevenLabsTTS(
        api_key=str(spec.secret("api_key")),
        base_url=str(spec.option("base_url", DEFAULT_BASE_URL)),
        optimize_streaming_latency=None if latency is None else int(latency),
        http_options=spec.options,
        **common_options(spec),
    )
