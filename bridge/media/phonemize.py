"""Text to IPA phonemes, per word and with espeak-ng's own durations, via libespeak-ng.

The library comes from the `espeakng_loader` wheel (it ships the .so and its data), bound
here with ctypes. libespeak-ng corrupts memory on some inputs (a long voice variant, long
runs without spaces), so it never runs in the bridge process: the public functions here
send each call to a worker process (`native_pool`, `native_worker`), which loads the
library once and runs `_Engine`. A crash there is an `EspeakError` for that call only.
Before a call leaves, the voice is checked against the engine's own voice list and the
text is normalised (`normalise_text`): defence in depth, so the known crashers never reach
the library at all. The functions block; callers on trio run them in a worker thread.

Durations come from actually synthesizing the text with phoneme events turned on: espeak
reports each phoneme's sample position as it renders it, which is the only place its
timing model is exposed. Rendering is fast (about 1 ms per second of speech here), so the
audio is simply thrown away when only the timing is wanted. The espeak TTS module reuses
`synthesize()` for its audio.

Piper bundles its own, statically linked espeak-ng; that copy has separate globals and runs
in the same workers (`piper_phonemes`), so the two never interfere.
"""

from __future__ import annotations

import bisect
import ctypes
import os
import threading
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from bridge.media import native_pool
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


class _Voice(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_void_p),
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


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
    """The loaded library. Only ever created inside a worker process, used one call at a time."""

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
        lib.espeak_ListVoices.argtypes = [ctypes.c_void_p]
        lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_Voice))
        self.data_path = data_path
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

    def voices(self) -> tuple[list[str], list[str]]:
        """Every name espeak answers to (voice names, identifiers, language codes) and the
        variant names (`en-us+f3`), all lower case."""
        names: set[str] = set()
        table = self.lib.espeak_ListVoices(None)
        i = 0
        while table[i]:
            voice = table[i].contents
            for value in (voice.name, voice.identifier):
                if value:
                    names.add(value.decode("utf-8", "replace").lower())
            pointer = voice.languages
            while pointer and ctypes.c_ubyte.from_address(pointer).value:  # priority byte, name, NUL
                language = ctypes.string_at(pointer + 1)
                names.add(language.decode("utf-8", "replace").lower())
                pointer += 2 + len(language)
            i += 1
        variants_dir = os.path.join(self.data_path, "voices", "!v")
        variants = sorted(f.lower() for f in os.listdir(variants_dir)) if os.path.isdir(variants_dir) else []
        return sorted(names), variants

    def text_to_phonemes(self, text: str) -> list[str]:
        buffer = ctypes.create_string_buffer(text.encode("utf-8") + b"\0")
        pointer = ctypes.c_void_p(ctypes.addressof(buffer))
        clauses: list[str] = []
        while pointer.value:
            result = self.lib.espeak_TextToPhonemes(ctypes.byref(pointer), _CHARS_UTF8, _PHONEMES_IPA)
            if result:
                clauses.append(result.decode("utf-8", "replace"))
        return clauses


# --------------------------------------------------------------------------- in the worker
# `_Engine` is only ever created inside a worker process (`native_worker` calls these).

_ENGINE: _Engine | None = None


def _engine() -> _Engine:
    global _ENGINE
    if _ENGINE is None:
        _ENGINE = _Engine()
    return _ENGINE


def native_info() -> tuple[int, list[str], list[str]]:
    """(sample rate, voice names, variant names) of the loaded library."""
    engine = _engine()
    names, variants = engine.voices()
    return engine.sample_rate, names, variants


def native_phonemes(text: str, voice: str) -> list[str]:
    engine = _engine()
    engine.set_voice(voice)
    return engine.text_to_phonemes(text)


def native_synth(
    text: str, voice: str, params: tuple[int, int, int, int, int], keep_audio: bool,
    should_stop: Callable[[], bool] | None,
) -> tuple[bytes, int, list[tuple[int, int, int, int, str]], bool]:
    """(audio, sample count, events, aborted); the audio is empty unless `keep_audio`."""
    engine = _engine()
    engine.set_voice(voice)
    engine.set_params(*params)
    job = engine.synth(text, should_stop)
    audio = b"".join(job.audio)
    events = [(e.kind, e.text_position, e.length, e.sample, e.phoneme) for e in job.events]
    return (audio if keep_audio else b""), len(audio) // 2, events, job.aborted


# --------------------------------------------------------------------------- in the bridge

MAX_VOICE_NAME = 64
MAX_RUN = 48  # longest stretch without a space that reaches the library (see normalise_text)
MAX_SPELLED = 8  # longest chain of spelled letters ("u.s.a.") that reaches it
# espeak renders ~1000x faster than real time (4000 characters in ~0.3 s): a call that
# takes longer than this, even on a loaded machine, is hung and its worker is replaced.
_TIMEOUT_BASE_S = 5.0
_TIMEOUT_PER_CHAR_S = 0.001
_INFO: tuple[int, frozenset[str], frozenset[str]] | None = None
_INFO_LOCK = threading.Lock()


def _call(op: str, *args: object, should_stop: Callable[[], bool] | None = None) -> object:
    size = sum(len(a) for a in args if isinstance(a, str))
    timeout = _TIMEOUT_BASE_S + _TIMEOUT_PER_CHAR_S * size
    try:
        return native_pool.pool().call(op, *args, timeout=timeout, should_stop=should_stop)
    except native_pool.WorkerCrashed as exc:
        raise EspeakError(f"failed on this input ({exc})") from None
    except native_pool.WorkerError as exc:
        raise EspeakError(str(exc)) from None


def warm_up(piper_config: str | None = None) -> None:
    """Start every worker and load the library (or piper's phonemizer for that voice) in
    each, so the first requests do not wait for it. Raises EspeakError."""
    try:
        if piper_config is None:
            native_pool.pool().warm("espeak_info")
        else:
            native_pool.pool().warm("piper_phonemes", piper_config, "a")
    except native_pool.WorkerCrashed as exc:
        raise EspeakError(str(exc)) from None


def warm_up_for_untimed_voices() -> None:
    """`warm_up` for a TTS whose audio comes without timing (OpenAI, Harmony Speech): its
    visemes are aligned against espeak, started with each segment's request, so the workers
    should be up before READY, or the first line's mouth follows loudness only. A missing or
    broken espeak is not an error here: those visemes then stay loudness-driven."""
    try:
        warm_up()
    except EspeakError:
        pass


def _info() -> tuple[int, frozenset[str], frozenset[str]]:
    global _INFO
    with _INFO_LOCK:
        if _INFO is None:
            rate, names, variants = _call("espeak_info")  # type: ignore[misc]
            _INFO = (int(rate), frozenset(names), frozenset(variants))
        return _INFO


def sample_rate() -> int:
    """espeak-ng's output rate (22050 Hz for its voices)."""
    return _info()[0]


def check_voice(voice: str) -> str:
    """`voice` if espeak-ng has it ("en-us", "English (America)", "gmw/en-US", each with an
    optional "+variant" such as "en-us+f3"); raises EspeakError otherwise.

    Checked here, never by trying: an unknown or overlong variant is one of the inputs
    that corrupt the library's memory.
    """
    if not isinstance(voice, str) or not voice or len(voice) > MAX_VOICE_NAME:
        raise EspeakError(f"espeak-ng voice names are 1..{MAX_VOICE_NAME} characters, got {str(voice)[:80]!r}")
    _, names, variants = _info()
    base, plus, variant = voice.partition("+")
    if base.lower() not in names:
        raise EspeakError(f"espeak-ng has no voice {base!r} (try 'en-us' or 'en-gb')")
    if plus and variant.lower() not in variants:
        raise EspeakError(f"espeak-ng has no voice variant {variant!r} (e.g. 'f3', 'm2', 'klatt')")
    return voice


def normalise_text(text: str, max_run: int = MAX_RUN, max_letters: int = MAX_SPELLED) -> tuple[str, list[int]]:
    """Text safe for a phonemizer, and for each of its characters the index in `text`.

    - Control, format, surrogate and unassigned characters become spaces (one for one).
    - A chain of more than `max_letters` spelled letters (a letter followed by a dot, as in
      "u.s.a.", spaces allowed between) gets " - " after every `max_letters`: espeak reads
      such a chain as one word, and piper's copy overflows a buffer at about 97 letters
      ("a." * 100, or "u.s. " * 49, kills it; see tests/data/phonemizer_crashers.txt).
    - A run of more than `max_run` characters without whitespace is broken with a space.

    Inserted characters map to the character after them, so word spans can be traced back
    to the caller's text.
    """
    out: list[str] = []
    origin: list[int] = []
    run = 0
    letters = 0
    length = len(text)
    for index, char in enumerate(text):
        if unicodedata.category(char) in ("Cc", "Cf", "Cs", "Co", "Cn") and char not in "\n\t":
            char = " "
        spelled = (
            char.isalpha() and index + 1 < length and text[index + 1] == "."
            and (index == 0 or not text[index - 1].isalpha())
        )
        if spelled:
            letters += 1
            if letters > max_letters:
                out.extend(" - ")
                origin.extend((index, index, index))
                letters, run = 1, 0
        elif not char.isspace() and char != "." and letters:
            letters = 0
        if char.isspace():
            run = 0
        else:
            if run >= max_run:
                out.append(" ")
                origin.append(index)
                run = 0
            run += 1
        out.append(char)
        origin.append(index)
    return "".join(out), origin


def phoneme_string(text: str, voice: str = DEFAULT_VOICE) -> str:
    """The IPA espeak-ng would say for `text`, clauses joined by spaces; no timing.

    Cheaper than `phonemize` (nothing is rendered); stress (ˈ ˌ) and length (ː) marks
    are included as espeak writes them.
    """
    clauses = _call("espeak_phonemes", normalise_text(text)[0], check_voice(voice))
    return " ".join(c for c in clauses if c)  # type: ignore[union-attr]


def phoneme_clauses(text: str, voice: str = DEFAULT_VOICE) -> list[str]:
    """The IPA espeak-ng would say for `text`, one string per clause (words separated by
    spaces); no timing, nothing rendered (about 0.1 ms a sentence).

    Clauses are where espeak pauses (commas, full stops), which is what a caller placing
    the words on audio by its silences needs.
    """
    clauses = _call("espeak_phonemes", normalise_text(text)[0], check_voice(voice))
    return [c for c in clauses if c.strip()]  # type: ignore[union-attr]


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
    keep_audio: bool = True,
) -> EspeakSynthesis:
    """Render `text` with espeak-ng and return the audio with its phoneme and word timeline.

    `should_stop` is polled while the worker renders; when it returns True the worker stops
    after its current audio buffer (about 100 ms of audio) and the result has
    ``aborted=True``. Word spans index `text` as given. Blocks: call from a worker thread
    under trio.
    """
    if should_stop is not None and should_stop():
        # Already given up (e.g. interrupted while queued for the renderer): render
        # nothing. Sent on, the job would reach a worker ahead of its stop frame, which
        # renders at least one buffer and, if this thread is descheduled in between, all
        # of it, so the caller would get a complete result it had abandoned.
        return EspeakSynthesis(text=text, samples=np.zeros(0, dtype=np.int16), sample_rate=sample_rate(), aborted=True)
    spoken, origin = normalise_text(text)
    params = (rate, pitch, pitch_range, volume, word_gap)
    audio, total, raw, aborted = _call(  # type: ignore[misc]
        "espeak_synth", spoken, check_voice(voice), params, keep_audio, should_stop=should_stop
    )
    rate_hz = sample_rate()
    samples = np.frombuffer(audio, dtype=np.int16).copy()
    events = [_RawEvent(*event) for event in raw]
    phonemes, words, sentence_starts = _timeline(spoken, events, total, rate_hz)
    if spoken != text:
        words = _trace_back(words, text, origin)
    return EspeakSynthesis(
        text=text,
        samples=samples,
        sample_rate=rate_hz,
        phonemes=phonemes,
        words=words,
        sentence_starts=sentence_starts,
        aborted=aborted,
    )


def piper_phonemes(config_path: str, text: str) -> list[list[str]]:
    """piper's phonemes per sentence for the voice whose piper config is `config_path`,
    computed in a worker (piper's static espeak-ng is as fragile as ours); text normalised.

    `PiperVoice.phonemize` is replaced by this for the voices the bridge loads.
    """
    return _call("piper_phonemes", config_path, normalise_text(text)[0])  # type: ignore[return-value]


def _trace_back(words: Sequence[WordPhonemes], text: str, origin: Sequence[int]) -> list[WordPhonemes]:
    """Word spans in the normalised text, moved back onto the caller's text."""
    traced: list[WordPhonemes] = []
    for word in words:
        if word.char_start >= len(origin) or word.char_end <= word.char_start:
            continue
        start = origin[word.char_start]
        end = origin[min(word.char_end, len(origin)) - 1] + 1
        traced.append(WordPhonemes(text[start:end], start, end, word.phonemes))
    return traced


def phonemize(text: str, voice: str = DEFAULT_VOICE, *, rate: int = DEFAULT_RATE_WPM) -> EspeakSynthesis:
    """Phonemes per word with espeak-ng's durations (the audio is rendered in the worker,
    then dropped there, so it never crosses the pipe).

    The result's ``samples`` is empty; everything else is as `synthesize` gives it.
    """
    return synthesize(text, voice, rate=rate, keep_audio=False)


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
