"""Text to IPA phonemes, per word and with espeak-ng's own durations, via libespeak-ng.

The library comes from the `espeakng_loader` wheel (it ships the .so and its data), bound
here with ctypes. espeak-ng keeps all its state in globals and is not reentrant, so every
call goes through one process-wide lock; callers on trio should run these functions in a
worker thread (`trio.to_thread.run_sync`).

Durations come from actually synthesizing the text with phoneme events turned on: espeak
reports each phoneme's sample position as it renders it, which is the only place its
timing model is exposed. Rendering is fast (about 1 ms per second of speech here), so the
audio is simply thrown away when only the timing is wanted. The espeak TTS module reuses
`synthesize()` for its audio.

Piper bundles its own, statically linked espeak-ng; that copy has separate globals and its
own lock, so the two never interfere.
"""

from __future__ import annotations

import bisect
import ctypes
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from bridge.providers.base import TimedUnit

DEFAULT_VOICE = "en-us"

# espeak_AUDIO_OUTPUT / initialise options / event types / flags, from speak_lib.h.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INIT_PHONEME_EVENTS = 0x0001
_INIT_PHONEME_IPA = 0x0002
_INIT_DONT_EXIT = 0x8000
_EVENT_LIST_TERMINATED = 0
_EVENT_WORD = 1
_EVENT_SENTENCE = 2
_EVENT_END = 5
_EVENT_MSG_TERMINATED = 6
_EVENT_PHONEME = 7
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_PHONEMES_IPA = 0x02

# espeak_PARAMETER ids and the defaults every call resets to (state is global, and a
# previous caller may have changed it).
_PARAM_RATE, _PARAM_VOLUME, _PARAM_PITCH, _PARAM_RANGE, _PARAM_WORDGAP = 1, 2, 3, 4, 7
DEFAULT_RATE_WPM = 175
DEFAULT_PITCH = 50
DEFAULT_RANGE = 50
DEFAULT_VOLUME = 100


class EspeakError(RuntimeError):
    """libespeak-ng could not be loaded, initialised, or did not accept a voice/text."""


@dataclass(frozen=True, slots=True)
class WordPhonemes:
    """One word of the input: where it is in the text, and its timed phonemes.

    ``char_start``/``char_end`` index the text given to espeak (end exclusive). Phoneme
    times are ms from the start of the whole utterance as espeak would speak it.
    """

    text: str
    char_start: int
    char_end: int
    phonemes: tuple[TimedUnit, ...]

    @property
    def start_ms(self) -> float:
        return self.phonemes[0].start_ms if self.phonemes else 0.0

    @property
    def end_ms(self) -> float:
        return self.phonemes[-1].end_ms if self.phonemes else 0.0


@dataclass(slots=True)
class EspeakSynthesis:
    """What espeak produced for a text: audio and the timeline of what it said.

    ``phonemes`` is the whole timeline in order; pauses (between clauses and sentences)
    are units with empty text. ``sentence_starts`` holds the sample index at which each
    sentence begins, so the audio can be cut per sentence.
    """

    text: str
    samples: np.ndarray
    sample_rate: int
    phonemes: list[TimedUnit] = field(default_factory=list)
    words: list[WordPhonemes] = field(default_factory=list)
    sentence_starts: list[int] = field(default_factory=list)
    aborted: bool = False

    @property
    def duration_ms(self) -> float:
        return 1000.0 * self.samples.size / self.sample_rate


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


@dataclass
class _RawEvent:
    kind: int
    text_position: int
    length: int
    sample: int
    phoneme: str


class _Job:
    """Collects what the synth callback reports for one `espeak_Synth` call."""

    def __init__(self, should_stop: Callable[[], bool] | None) -> None:
        self.audio: list[bytes] = []
        self.events: list[_RawEvent] = []
        self.should_stop = should_stop
        self.aborted = False


class _Engine:
    """The loaded library. Only ever used with `_LOCK` held."""

    def __init__(self) -> None:
        try:
            import espeakng_loader
        except ImportError as exc:  # pragma: no cover - the embedded extra is missing
            raise EspeakError("espeak-ng needs the `espeakng-loader` package (embedded extra)") from exc
        try:
            lib = ctypes.CDLL(espeakng_loader.get_library_path())
            data_path = espeakng_loader.get_data_path()
        except (OSError, RuntimeError) as exc:
            raise EspeakError(f"cannot load libespeak-ng: {exc}") from exc
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
            ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_int, ctypes.c_int]
        lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        options = _INIT_PHONEME_EVENTS | _INIT_PHONEME_IPA | _INIT_DONT_EXIT
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 100, data_path.encode(), options)
        if rate <= 0:
            raise EspeakError(f"espeak_Initialize failed (returned {rate}) with data at {data_path}")
        self.lib = lib
        self.sample_rate = int(rate)
        self.voice: str | None = None
        self.job: _Job | None = None
        # Keep a reference: ctypes frees the trampoline with the Python object.
        self._callback = _SynthCallback(self._on_synth)
        lib.espeak_SetSynthCallback(self._callback)

    def _on_synth(self, wav: ctypes.POINTER(ctypes.c_short), count: int, events: ctypes.POINTER(_Event)) -> int:
        job = self.job
        if job is None:
            return 1
        try:
            if count > 0 and wav:
                job.audio.append(ctypes.string_at(wav, count * 2))
            i = 0
            while events and events[i].type != _EVENT_LIST_TERMINATED:
                ev = events[i]
                phoneme = ""
                if ev.type == _EVENT_PHONEME:
                    phoneme = bytes(ev.id.string).split(b"\0", 1)[0].decode("utf-8", "ignore")
                job.events.append(_RawEvent(ev.type, ev.text_position, ev.length, ev.sample, phoneme))
                i += 1
            if job.should_stop is not None and job.should_stop():
                job.aborted = True
                return 1
        except Exception:  # never let an exception cross into C; abort the synthesis instead
            job.aborted = True
            return 1
        return 0

    def set_voice(self, voice: str) -> None:
        if voice == self.voice:
            return
        status = self.lib.espeak_SetVoiceByName(voice.encode())
        if status != 0:
            self.voice = None
            raise EspeakError(f"espeak-ng has no voice {voice!r} (status {status})")
        self.voice = voice

    def set_params(self, rate: int, pitch: int, pitch_range: int, volume: int, word_gap: int) -> None:
        for param, value in (
            (_PARAM_RATE, rate), (_PARAM_PITCH, pitch), (_PARAM_RANGE, pitch_range),
            (_PARAM_VOLUME, volume), (_PARAM_WORDGAP, word_gap),
        ):
            self.lib.espeak_SetParameter(param, int(value), 0)

    def synth(self, text: str, should_stop: Callable[[], bool] | None) -> _Job:
        data = text.encode("utf-8") + b"\0"
        buffer = ctypes.create_string_buffer(data, len(data))
        job = _Job(should_stop)
        self.job = job
        try:
            status = self.lib.espeak_Synth(buffer, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        finally:
            self.job = None
        if status != 0 and not job.aborted:
            raise EspeakError(f"espeak_Synth failed (status {status})")
        return job

    def text_to_phonemes(self, text: str) -> list[str]:
        buffer = ctypes.create_string_buffer(text.encode("utf-8") + b"\0")
        pointer = ctypes.c_void_p(ctypes.addressof(buffer))
        clauses: list[str] = []
        while pointer.value:
            result = self.lib.espeak_TextToPhonemes(ctypes.byref(pointer), _CHARS_UTF8, _PHONEMES_IPA)
            if result:
                clauses.append(result.decode("utf-8", "replace"))
        return clauses


_LOCK = threading.Lock()
_ENGINE: _Engine | None = None


def _engine() -> _Engine:
    global _ENGINE
    if _ENGINE is None:
        _ENGINE = _Engine()
    return _ENGINE


def sample_rate() -> int:
    """espeak-ng's output rate (22050 Hz for its voices)."""
    with _LOCK:
        return _engine().sample_rate


def phoneme_string(text: str, voice: str = DEFAULT_VOICE) -> str:
    """The IPA espeak-ng would say for `text`, clauses joined by spaces; no timing.

    Cheaper than `phonemize` (nothing is rendered); stress (ˈ ˌ) and length (ː) marks
    are included as espeak writes them.
    """
    with _LOCK:
        engine = _engine()
        engine.set_voice(voice)
        return " ".join(c for c in engine.text_to_phonemes(text) if c)


def phoneme_clauses(text: str, voice: str = DEFAULT_VOICE) -> list[str]:
    """The IPA espeak-ng would say for `text`, one string per clause (words separated by
    spaces); no timing, nothing rendered (about 0.1 ms a sentence).

    Clauses are where espeak pauses (commas, full stops), which is what a caller placing
    the words on audio by its silences needs.
    """
    with _LOCK:
        engine = _engine()
        engine.set_voice(voice)
        return [c for c in engine.text_to_phonemes(text) if c.strip()]


def synthesize(
    text: str,
    voice: str = DEFAULT_VOICE,
    *,
    rate: int = DEFAULT_RATE_WPM,
    pitch: int = DEFAULT_PITCH,
    pitch_range: int = DEFAULT_RANGE,
    volume: int = DEFAULT_VOLUME,
    word_gap: int = 0,
    should_stop: Callable[[], bool] | None = None,
) -> EspeakSynthesis:
    """Render `text` with espeak-ng and return the audio with its phoneme and word timeline.

    `should_stop` is polled after every audio buffer espeak hands over (about 100 ms of
    audio); when it returns True synthesis stops early and the result has
    ``aborted=True``. Blocks: call from a worker thread under trio.
    """
    with _LOCK:
        engine = _engine()
        engine.set_voice(voice)
        engine.set_params(rate, pitch, pitch_range, volume, word_gap)
        job = engine.synth(text, should_stop)
        rate_hz = engine.sample_rate
    samples = np.frombuffer(b"".join(job.audio), dtype=np.int16).copy()
    phonemes, words, sentence_starts = _timeline(text, job.events, samples.size, rate_hz)
    return EspeakSynthesis(
        text=text,
        samples=samples,
        sample_rate=rate_hz,
        phonemes=phonemes,
        words=words,
        sentence_starts=sentence_starts,
        aborted=job.aborted,
    )


def phonemize(text: str, voice: str = DEFAULT_VOICE, *, rate: int = DEFAULT_RATE_WPM) -> EspeakSynthesis:
    """Phonemes per word with espeak-ng's durations (the audio is rendered, then dropped).

    The result's ``samples`` is empty; everything else is as `synthesize` gives it.
    """
    result = synthesize(text, voice, rate=rate)
    result.samples = np.zeros(0, dtype=np.int16)
    return result


def _timeline(
    text: str, events: list[_RawEvent], total_samples: int, rate_hz: int
) -> tuple[list[TimedUnit], list[WordPhonemes], list[int]]:
    """Turn espeak's event stream into timed phonemes grouped by word.

    A phoneme event marks where that phoneme starts; it lasts until the next phoneme event
    or the end of its clause. Pauses appear as phoneme events with no symbol. espeak tags a
    phoneme with the 1-based text position of the word it belongs to, which is how phonemes
    are grouped into words (pauses carry the position of the punctuation instead).
    """

    def ms(sample: int) -> float:
        return 1000.0 * sample / rate_hz

    starts: list[tuple[int, str, int]] = []  # (sample, phoneme, text_position)
    clause_ends: list[int] = []
    word_events: list[_RawEvent] = []
    sentence_starts: list[int] = []
    for ev in events:
        if ev.kind == _EVENT_PHONEME:
            starts.append((ev.sample, ev.phoneme, ev.text_position))
        elif ev.kind == _EVENT_END:
            clause_ends.append(ev.sample)
        elif ev.kind == _EVENT_WORD:
            word_events.append(ev)
        elif ev.kind == _EVENT_SENTENCE:
            if not sentence_starts or ev.sample > sentence_starts[-1]:
                sentence_starts.append(ev.sample)
    if not sentence_starts:
        sentence_starts = [0]
    sentence_starts[0] = 0

    ends = sorted(set(clause_ends))
    phonemes: list[TimedUnit] = []
    positions: list[int] = []
    for index, (sample, phoneme, position) in enumerate(starts):
        if index + 1 < len(starts):
            end = starts[index + 1][0]
        else:
            end = total_samples
        # A clause end between this phoneme and the next closes the phoneme there.
        k = bisect.bisect_right(ends, sample)
        if k < len(ends) and ends[k] < end:
            end = ends[k]
        if end < sample:
            end = sample
        if not phoneme and phonemes and end == sample:
            continue  # a zero-length pause marker adds nothing
        phonemes.append(TimedUnit(phoneme, ms(sample), ms(end)))
        positions.append(position)
    # Pauses between a clause end and the next phoneme are implicit in the events; make
    # them explicit so the timeline has no holes.
    filled: list[TimedUnit] = []
    filled_positions: list[int] = []
    cursor = 0.0
    for unit, position in zip(phonemes, positions):
        if unit.start_ms > cursor + 0.5:
            filled.append(TimedUnit("", cursor, unit.start_ms))
            filled_positions.append(-1)
        filled.append(unit)
        filled_positions.append(position)
        cursor = max(cursor, unit.end_ms)
    if total_samples and ms(total_samples) > cursor + 0.5:
        filled.append(TimedUnit("", cursor, ms(total_samples)))
        filled_positions.append(-1)
    merged: list[TimedUnit] = []
    merged_positions: list[int] = []
    for unit, position in zip(filled, filled_positions):
        if merged and not unit.text and not merged[-1].text:
            merged[-1] = TimedUnit("", merged[-1].start_ms, max(merged[-1].end_ms, unit.end_ms))
            continue
        merged.append(unit)
        merged_positions.append(position)
    filled, filled_positions = merged, merged_positions

    by_position: dict[int, list[TimedUnit]] = {}
    word_order: list[_RawEvent] = []
    for ev in word_events:
        if ev.text_position not in by_position:
            by_position[ev.text_position] = []
            word_order.append(ev)
    last_word: int | None = None
    for unit, position in zip(filled, filled_positions):
        if not unit.text:
            continue
        if position in by_position:
            last_word = position
        if last_word is not None:
            by_position[last_word].append(unit)
    words: list[WordPhonemes] = []
    word_starts = sorted(min(max(0, ev.text_position - 1), len(text)) for ev in word_order)
    for ev in word_order:
        units = by_position[ev.text_position]
        if not units:
            continue
        start = min(max(0, ev.text_position - 1), len(text))
        later = [s for s in word_starts if s > start]
        end = _word_end(text, start, later[0] if later else len(text))
        words.append(WordPhonemes(text[start:end], start, end, tuple(units)))
    return filled, words, sentence_starts


def _word_end(text: str, start: int, limit: int) -> int:
    """Where the word starting at `start` ends: at whitespace or the next word (`limit`),
    less trailing punctuation.

    espeak's own word length is unreliable (it reports 5 for "owner's"), so the span is
    taken from the text: letters, digits and inner apostrophes belong to the word; a
    hyphenated compound that espeak speaks as two words is cut where the second begins.
    """
    end = start
    while end < min(limit, len(text)) and not text[end].isspace():
        end += 1
    while end > start + 1 and not text[end - 1].isalnum():
        end -= 1
    return end
