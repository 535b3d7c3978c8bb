"""`elevenlabs_realtime` TTS: ElevenLabs' stream-input WebSocket, fed text as the LLM writes it.

    WS {ws_url}/v1/text-to-speech/{voice_id}/stream-input?model_id=..&output_format=..
    -> {"text": " ", "voice_settings", "generation_config": {"chunk_length_schedule"}, "xi_api_key"}
    -> {"text": "segment ", "try_trigger_generation": true, "flush"?: true}   (as many as needed)
    -> {"text": ""}                                                        (end of input)
    <- {"audio": b64, "alignment"/"normalizedAlignment": {"chars", "charStartTimesMs",
        "charDurationsMs"}, "isFinal": null} ... {"isFinal": true}, then the server closes.
    errors: {"message", "error", "code"} and/or a 1008 close with a reason.

Our own client over websockets.trio: the SDK's is synchronous and forces wss://, which a
local fake (and a trio program) cannot use.

`open_realtime()` yields a `RealtimeSpeech`: call ``send_text(segment)`` whenever the LLM
has more words, ``end()`` when it is done, and iterate it for `SpeechAudio` in the order
the server sends it (sending and iterating may happen in different tasks). ElevenLabs
buffers text until ``chunk_length_schedule`` characters are waiting, so pass
``flush=True`` at a sentence end to hear it at once. `synthesize()` is the one-shot form.

Waiting for audio has no deadline while the caller may still be writing (the LLM may be
slow; the server closes after 20 s idle, or ``inactivity_timeout``); once a flush or
``end()`` asked for audio, each wait for the next message is bounded by ``timeout``.

Alignment times in these messages count from the start of the message's own audio;
`CharTimeline` (shared with the HTTP module, ``alignment_times = "auto"``) puts them on
the utterance's clock. The spelling ``charsDurationsMs`` seen in some documents is
accepted as well as the SDK's ``charDurationsMs``.

Leaving the block (or cancelling it) closes the socket; on cancellation websockets closes
the TCP stream at once, so no reader or writer stays behind.

Config (`[modules.NAME]`, provider = "elevenlabs_realtime"): as `elevenlabs` (`api_key` /
`api_key_env`, `voice`, `model`, `output_format` (pcm_*, mp3_*, ulaw_8000, alaw_8000),
`voice_settings`, `alignment`, `alignment_times`, `timeout`, `connect_timeout`), plus
`ws_url` (default derived from `base_url`: https -> wss, http -> ws),
`chunk_length_schedule` (default [120, 160, 250, 290]), `inactivity_timeout` (s, sent as
a query parameter), `language`, `stream_text` (default true: the speaker feeds each segment's
words as the LLM writes them, one socket per segment; false: each segment is sent whole once
written) and `stream_first_words` (default 4: with `stream_text`, a reply's first segment ends
after this many words, so first audio comes that many words after the LLM's first).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

import trio
from websockets.exceptions import ConnectionClosed
from websockets.trio.client import ClientConnection

from bridge.media.decode import DecodeError
from bridge.providers import http
from bridge.providers.base import ConfigError, ProviderError, SpeechAudio, TimedUnit, TTSRequest
from bridge.providers.llm.ws_session import closed_error, deadline_error, open_websocket, scrubbed_errors, send_text
from bridge.providers.registry import ModuleSpec
from bridge.providers.tts.elevenlabs import (
    ALIGNMENT_KINDS,
    DEFAULT_BASE_URL,
    DEFAULT_MODEL,
    DEFAULT_OUTPUT_FORMAT,
    EMPTY,
    PROVIDER,
    CharTimeline,
    common_options,
    decode_b64,
    make_decoder,
    parse_output_format,
    units_from_ms,
)

DEFAULT_SCHEDULE = (120, 160, 250, 290)
DEFAULT_FIRST_WORDS = 4
DEFAULT_TIMEOUT_S = 30.0


def ws_base_from(base_url: str) -> str:
    """``https://host`` -> ``wss://host``; ``http://`` -> ``ws://``; ws(s) URLs unchanged."""
    parts = urlsplit(base_url)
    scheme = {"https": "wss", "http": "ws"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


class RealtimeSpeech:
    """One stream-input socket: text goes in with `send_text`, audio comes out by iteration."""

    def __init__(
        self,
        ws: ClientConnection,
        *,
        output_format: str,
        alignment: str,
        alignment_times: str,
        timeout: float,
    ) -> None:
        self._ws = ws
        self._decoder = make_decoder(output_format)
        self._nominal_rate = parse_output_format(output_format)[1] or 0
        self._output_format = output_format
        self._alignment = alignment
        self._timeline = CharTimeline(alignment_times)
        self._timeout = timeout
        self._ended = False
        self._finished = False
        self._expect_by: float | None = None  # deadline for the next message, once audio is due
        self._wait_scope: trio.CancelScope | None = None
        self._samples_out = 0
        self._audio = self._messages()
        self.text_sent = ""

    # ----------------------------------------------------------------- sending

    async def _send(self, message: Mapping[str, Any], during: str) -> None:
        await send_text(self._ws, PROVIDER, json.dumps(message), during)

    async def start(self, first: Mapping[str, Any]) -> None:
        await self._send(first, "while opening the stream")

    def _expect_audio(self) -> None:
        """From now on a wait for the server is bounded; tell a wait already under way."""
        self._expect_by = trio.current_time() + self._timeout
        if self._wait_scope is not None:
            self._wait_scope.deadline = self._expect_by

    async def send_text(self, segment: str, *, flush: bool = False) -> None:
        """Queue ``segment`` for speech; ``flush`` speaks everything queued so far now.

        A segment must end with a space for ElevenLabs to join words correctly: one is added
        when missing. Empty segments are ignored (an empty text would end the stream).
        """
        if self._ended:
            raise RuntimeError("send_text() after end(): open a new realtime stream")
        if not segment.strip() and not flush:
            return
        text = segment if segment.endswith((" ", "\n")) else segment + " "
        message: dict[str, Any] = {"text": text, "try_trigger_generation": True}
        if flush:
            message["flush"] = True
        self.text_sent += text
        await self._send(message, "while sending text")
        if flush:
            self._expect_audio()

    async def flush(self) -> None:
        """Speak whatever text the server is holding, without ending the stream."""
        await self.send_text(" ", flush=True)

    async def end(self) -> None:
        """No more text: the server speaks the rest, then sends ``isFinal`` and closes."""
        if self._ended:
            return
        self._ended = True
        await self._send({"text": ""}, "while ending the stream")
        self._expect_audio()

    # ----------------------------------------------------------------- receiving

    async def _recv(self) -> str | None:
        """The next message, or None when the server closed normally after ``end()``."""
        with trio.CancelScope() as scope:
            self._wait_scope = scope
            if self._expect_by is not None:
                scope.deadline = self._expect_by
            try:
                message = await self._ws.recv()
            except ConnectionClosed as exc:
                if self._ended and exc.rcvd is not None and exc.rcvd.code == 1000:
                    return None
                raise closed_error(PROVIDER, exc, "mid-stream") from None
            finally:
                self._wait_scope = None
        if scope.cancelled_caught:
            raise deadline_error(PROVIDER, "waiting for audio", self._timeout)
        if self._expect_by is not None:
            self._expect_by = trio.current_time() + self._timeout
        return message.decode("utf-8", "replace") if isinstance(message, bytes) else message

    def _units(self, message: Mapping[str, Any]) -> list[TimedUnit]:
        keys = ("normalizedAlignment", "alignment") if self._alignment == "normalized" else ("alignment", "normalizedAlignment")
        for key in keys:
            block = message.get(key)
            if isinstance(block, Mapping):
                chars = block.get("chars")
                starts = block.get("charStartTimesMs", block.get("char_start_times_ms"))
                durations = block.get("charDurationsMs", block.get("charsDurationsMs", block.get("char_durations_ms")))
                units = units_from_ms(chars, starts, durations)
                if units:
                    return units
        return []

    async def _messages(self) -> AsyncIterator[SpeechAudio]:
        pending: list[TimedUnit] = []
        try:
            while True:
                text = await self._recv()
                if text is None:
                    break
                try:
                    message = json.loads(text)
                except ValueError:
                    raise ProviderError("backend_error", f"{PROVIDER} sent a message that is not JSON") from None
                if not isinstance(message, dict):
                    continue
                if message.get("error") or (message.get("message") and not message.get("audio")):
                    what = message.get("error") or "error"
                    raise ProviderError("backend_error", f"{PROVIDER} stream failed: {what}: {message.get('message', '')}".rstrip(": "))
                audio = message.get("audio")
                if audio:
                    rate = self._decoder.sample_rate or self._nominal_rate or 1
                    pending += self._timeline.place(self._units(message), self._samples_out * 1000.0 / rate)
                    samples = self._decoder.feed(decode_b64(str(audio), "audio"))
                    if len(samples):
                        self._samples_out += len(samples)
                        yield SpeechAudio(samples, self._decoder.sample_rate or rate, characters=pending)
                        pending = []
                if message.get("isFinal"):
                    break
            self._finished = True
            tail = self._decoder.flush() if self._samples_out or pending else EMPTY
        except DecodeError as exc:
            raise ProviderError("backend_error", f"{PROVIDER} sent audio that is not valid {self._output_format}: {exc}") from None
        if len(tail) or pending:
            yield SpeechAudio(tail, self._decoder.sample_rate or self._nominal_rate, characters=pending)

    def __aiter__(self) -> AsyncIterator[SpeechAudio]:
        return self._audio

    @property
    def finished(self) -> bool:
        """True once the server said ``isFinal`` (or closed normally after ``end()``)."""
        return self._finished

    async def aclose(self) -> None:
        await self._audio.aclose()


class ElevenLabsRealtimeTTS:
    """Speech from ElevenLabs' stream-input socket; see the module docstring."""

    def __init__(
        self,
        *,
        api_key: str,
        voice: str | None,
        ws_url: str,
        model: str = DEFAULT_MODEL,
        output_format: str = DEFAULT_OUTPUT_FORMAT,
        voice_settings: Mapping[str, Any] | None = None,
        language: str | None = None,
        alignment: str = "original",
        alignment_times: str = "auto",
        chunk_length_schedule: Sequence[int] = DEFAULT_SCHEDULE,
        inactivity_timeout: float | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        connect_timeout: float = http.DEFAULT_CONNECT_TIMEOUT_S,
        stream_text: bool = True,
        first_words: int | None = DEFAULT_FIRST_WORDS,
    ) -> None:
        codec, _ = parse_output_format(output_format)
        if codec == "opus":
            raise ConfigError("elevenlabs_realtime: opus output is not supported on the socket; use pcm_* or mp3_*")
        if alignment not in ALIGNMENT_KINDS:
            raise ConfigError(f"ElevenLabs alignment {alignment!r}: use one of {', '.join(ALIGNMENT_KINDS)}")
        CharTimeline(alignment_times)
        if not chunk_length_schedule or any(int(n) < 1 for n in chunk_length_schedule):
            raise ConfigError("elevenlabs_realtime: chunk_length_schedule must be a list of positive sizes")
        self.name = "elevenlabs_realtime"
        self._api_key = api_key
        self.voice = voice
        self.ws_url = ws_url.rstrip("/")
        self.model = model
        self.output_format = output_format
        self.voice_settings = dict(voice_settings) if voice_settings else None
        self.language = language
        self.alignment = alignment
        self.alignment_times = alignment_times
        self.chunk_length_schedule = [int(n) for n in chunk_length_schedule]
        self.inactivity_timeout = inactivity_timeout
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        if first_words is not None and first_words < 1:
            raise ConfigError("elevenlabs_realtime: stream_first_words must be at least 1")
        self.stream_text = stream_text
        self.first_words = first_words

    def endpoint(self, voice: str, language: str | None = None) -> str:
        query: dict[str, str] = {"model_id": self.model, "output_format": self.output_format}
        if self.inactivity_timeout is not None:
            query["inactivity_timeout"] = f"{int(self.inactivity_timeout)}"
        if language:
            query["language_code"] = language
        return f"{self.ws_url}/v1/text-to-speech/{quote(voice, safe='')}/stream-input?{urlencode(query)}"

    def first_message(self, voice_settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
        message: dict[str, Any] = {"text": " "}
        settings = voice_settings if voice_settings is not None else self.voice_settings
        if settings:
            message["voice_settings"] = dict(settings)
        message["generation_config"] = {"chunk_length_schedule": list(self.chunk_length_schedule)}
        message["xi_api_key"] = self._api_key
        return message

    @asynccontextmanager
    async def open_realtime(
        self, voice: str | None = None, *, options: Mapping[str, Any] | None = None
    ) -> AsyncIterator[RealtimeSpeech]:
        """Open a stream for text that arrives piece by piece; see `RealtimeSpeech`."""
        opts = options or {}
        voice_id = voice or self.voice
        if not voice_id:
            raise ProviderError("backend_error", f"{PROVIDER}: no voice id configured or requested")
        url = self.endpoint(voice_id, opts.get("language", self.language))
        async with scrubbed_errors([self._api_key]):
            async with open_websocket(
                PROVIDER, url, connect_timeout=self.connect_timeout, headers={"xi-api-key": self._api_key}
            ) as ws:
                speech = RealtimeSpeech(
                    ws,
                    output_format=self.output_format,
                    alignment=self.alignment,
                    alignment_times=self.alignment_times,
                    timeout=self.timeout,
                )
                try:
                    await speech.start(self.first_message(opts.get("voice_settings")))
                    yield speech
                finally:
                    with trio.CancelScope(shield=True):
                        await speech.aclose()

    def open_text_stream(self, request: TTSRequest) -> AbstractAsyncContextManager[RealtimeSpeech]:
        """The speaker's text stream (`bridge.providers.base.TextStreamTTS`); `request.text` is unused."""
        return self.open_realtime(request.voice, options=request.options)

    @asynccontextmanager
    async def synthesize(self, request: TTSRequest) -> AsyncIterator[AsyncIterator[SpeechAudio]]:
        """The whole text at once: sent, ended, and the audio yielded as it comes."""
        async with self.open_realtime(request.voice, options=request.options) as speech:
            await speech.send_text(request.text)
            await speech.end()
            yield speech.__aiter__()

    async def aclose(self) -> None:
        return None


def create(spec: ModuleSpec) -> ElevenLabsRealtimeTTS:
    ws_url = spec.option("ws_url") or ws_base_from(str(spec.option("base_url", DEFAULT_BASE_URL)))
    schedule = spec.option("chunk_length_schedule", DEFAULT_SCHEDULE)
    if not isinstance(schedule, (list, tuple)):
        raise ConfigError(f"module {spec.name!r}: `chunk_length_schedule` must be a list of numbers")
    inactivity = spec.option("inactivity_timeout")
    stream_text = spec.option("stream_text", True)
    if not isinstance(stream_text, bool):
        raise ConfigError(f"module {spec.name!r}: `stream_text` must be true or false")
    first_words = spec.option("stream_first_words", DEFAULT_FIRST_WORDS)
    if not isinstance(first_words, int) or isinstance(first_words, bool) or first_words < 1:
        raise ConfigError(f"module {spec.name!r}: `stream_first_words` must be a whole number of at least 1")
    return ElevenLabsRealtimeTTS(
        api_key=str(spec.secret("api_key")),
        ws_url=str(ws_url),
        chunk_length_schedule=schedule,
        inactivity_timeout=None if inactivity is None else float(inactivity),
        timeout=float(spec.option("timeout", DEFAULT_TIMEOUT_S)),
        connect_timeout=float(spec.option("connect_timeout", http.DEFAULT_CONNECT_TIMEOUT_S)),
        stream_text=stream_text,
        first_words=first_words,
        **common_options(spec),
    )
