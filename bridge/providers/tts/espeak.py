"""espeak-ng: instant, robotic, always-available speech; the fallback voice.

It needs no model and renders about a thousand times faster than real time, so a
character can still talk (and move its lips: espeak reports every phoneme's position)
when nothing better is configured or a cloud voice is down.

The whole text is rendered in one call (a worker thread waiting on a native worker
process, see `media/native_pool.py`: a crash of libespeak-ng is a `backend_error` for this
request only) and handed out one piece per sentence. The worker checks for a stop after
every ~100 ms of audio it produces; the waiting thread sends one when the abandon flag is
set or the trio task is cancelled, so a cancelled request stops the library mid-text
rather than finishing it. Voice names are checked against espeak-ng's own voice list.

Options (config, overridable per request): `voice` (espeak-ng voice, default "en-us"),
`rate` (words per minute, 80..450, default 175), `pitch` (0..99), `range` (0..99),
`volume` (0..200), `word_gap` (extra pause between words, in 10 ms units).
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import trio

from bridge.media import phonemize
from bridge.providers.base import ConfigError, ProviderError, SpeechAudio, TimedUnit, TTSRequest
from bridge.providers.registry import ModuleSpec

_LIMITS: dict[str, tuple[int, int, int]] = {  # option: (low, high, default)
    "rate": (80, 450, phonemize.DEFAULT_RATE_WPM),
    "pitch": (0, 99, phonemize.DEFAULT_PITCH),
    "range": (0, 99, phonemize.DEFAULT_RANGE),
    "volume": (0, 200, phonemize.DEFAULT_VOLUME),
    "word_gap": (0, 100, 0),
}


@dataclass(frozen=True, slots=True)
class _Settings:
    voice: str
    rate: int
    pitch: int
    range: int
    volume: int
    word_gap: int


def _settings(options: Mapping[str, Any], where: str) -> _Settings:
    values: dict[str, int] = {}
    for key, (low, high, default) in _LIMITS.items():
        value = options.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            raise ConfigError(f"{where}: `{key}` must be a number in {low}..{high}, got {value!r}")
        values[key] = int(value)
    voice = options.get("voice", phonemize.DEFAULT_VOICE)
    if not isinstance(voice, str) or not voice:
        raise ConfigError(f"{where}: `voice` must be an espeak-ng voice name such as 'en-us', got {voice!r}")
    try:
        phonemize.check_voice(voice)
    except phonemize.EspeakError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return _Settings(voice=voice, **values)


def _host_cancelled() -> bool:
    try:
        trio.from_thread.check_cancelled()
    except trio.Cancelled:
        return True
    return False


def split_sentences(result: phonemize.EspeakSynthesis) -> list[SpeechAudio]:
    """Cut espeak's audio at its sentence starts; each piece keeps the phonemes inside it.

    Phoneme times stay relative to the whole utterance, as SpeechAudio asks.
    """
    rate = result.sample_rate
    cuts = sorted({0, *[s for s in result.sentence_starts if 0 < s < result.samples.size], result.samples.size})
    pieces: list[SpeechAudio] = []
    for start, end in zip(cuts, cuts[1:]):
        start_ms, end_ms = 1000.0 * start / rate, 1000.0 * end / rate
        units: list[TimedUnit] = []
        for u in result.phonemes:
            if u.end_ms <= start_ms + 0.5 or u.start_ms >= end_ms - 0.5:
                continue
            # A pause that spans the cut is shared by the two sentences.
            units.append(TimedUnit(u.text, max(u.start_ms, start_ms), min(u.end_ms, end_ms)))
        pieces.append(SpeechAudio(samples=result.samples[start:end].copy(), sample_rate=rate, phonemes=units))
    return pieces


class EspeakTTS:
    """The `tts/espeak` module."""

    name = "espeak"

    def __init__(self, spec: ModuleSpec, settings: _Settings) -> None:
        self.spec = spec
        self.settings = settings
        self.last_aborted = False  # did the last synthesis stop early (cancelled)?

    def _request_settings(self, request: TTSRequest) -> _Settings:
        if not request.options and not request.voice:
            return self.settings
        merged = {**self.spec.options, **dict(request.options)}
        if request.voice and "voice" not in request.options:
            merged["voice"] = request.voice
        try:
            return _settings(merged, f"tts request for {self.spec.name!r}")
        except ConfigError as exc:
            raise ProviderError("backend_error", str(exc)) from exc

    async def render(self, text: str, settings: _Settings | None = None) -> phonemize.EspeakSynthesis:
        """Render all of `text` in a worker thread; stops early if this task is cancelled."""
        s = settings or self.settings
        abandon = threading.Event()

        def should_stop() -> bool:
            return abandon.is_set() or _host_cancelled()

        job = partial(
            phonemize.synthesize, text, s.voice, rate=s.rate, pitch=s.pitch, pitch_range=s.range,
            volume=s.volume, word_gap=s.word_gap, should_stop=should_stop,
        )
        try:
            result = await trio.to_thread.run_sync(job, abandon_on_cancel=False)
        except phonemize.EspeakError as exc:
            raise ProviderError("backend_error", f"espeak-ng: {exc}") from exc
        finally:
            abandon.set()
        self.last_aborted = result.aborted
        if result.aborted:
            # Only a cancellation aborts; the task's own cancel scope raises it here.
            await trio.lowlevel.checkpoint()
            raise ProviderError("backend_error", "espeak-ng synthesis was stopped")
        return result

    @asynccontextmanager
    async def synthesize(self, request: TTSRequest) -> AsyncIterator[AsyncIterator[SpeechAudio]]:
        """Stream the request's audio, one piece per sentence, with espeak's phoneme times."""
        settings = self._request_settings(request)
        result = await self.render(request.text, settings)
        # Text with nothing to pronounce ("", "...") still renders a few ms of silence.
        spoken = any(u.text for u in result.phonemes)
        yield _iterate(split_sentences(result) if spoken else [])

    async def aclose(self) -> None:
        """espeak-ng is shared by the process; nothing to release."""


class _ListStream:
    """Hands out ready pieces; each `__anext__` is a checkpoint so cancellation lands."""

    def __init__(self, pieces: list[SpeechAudio]) -> None:
        self._pieces = list(pieces)

    def __aiter__(self) -> _ListStream:
        return self

    async def __anext__(self) -> SpeechAudio:
        await trio.lowlevel.checkpoint()
        if not self._pieces:
            raise StopAsyncIteration
        return self._pieces.pop(0)


def _iterate(pieces: list[SpeechAudio]) -> AsyncIterator[SpeechAudio]:
    return _ListStream(pieces)


def create(spec: ModuleSpec) -> EspeakTTS:
    """Build the module from `[modules.NAME]`; checks options and that the library loads."""
    settings = _settings(spec.options, f"module {spec.name!r} (tts/espeak)")
    try:
        phonemize.warm_up()
        phonemize.phoneme_string("a", settings.voice)
    except phonemize.EspeakError as exc:
        raise ConfigError(f"module {spec.name!r} (tts/espeak): {exc}") from exc
    return EspeakTTS(spec, settings)
