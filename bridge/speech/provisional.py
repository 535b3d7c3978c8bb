"""Lips that never wait: visemes for an untimed voice's segment while its audio still arrives.

OpenAI and Harmony Speech send audio with no timing. The precise estimate (espeak's
rendering of the text aligned to the audio by DTW, `visemes.align_to_reference`) needs the
whole segment, and holding the first segment's audio back for it cost ~500 ms of first
audio. Instead a segment streams at once and its keyframes come from the best timeline
known when each chunk leaves:

1. provisional: espeak's phoneme times stretched by the voice's speaking rate (`VoiceRate`,
   learned per voice from earlier segments' precise alignments) and started where speech
   starts in the audio received so far;
2. partial: the audio received so far aligned to espeak's rendering by open-end DTW (how far
   into the text the voice has got, and where each phoneme fell); the phonemes not reached
   yet follow at the voice's rate. Redone as more audio arrives, at growing intervals, and
   only while the segment is playing (a segment still being read ahead of its turn waits
   for its whole alignment: partial ones there cost a crowd CPU for nothing);
3. whole: once the segment's audio is complete, the precise alignment, which also teaches
   the voice's rate and where its speech starts.

A segment synthesized ahead of its playback (usually every one after the first) is complete
before its first chunk is due and goes out with the precise timeline from its start.

Sans-I/O: `StreamingAlignment` says which job is due (`next_job`), `run_job` does it
(blocking: call it in a worker thread) and `apply` takes the result; `bridge.speech.lips`
runs this under trio. Measured accuracy in docs/visemes.md.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from bridge.media import phonemize as espeak
from bridge.speech import audio as pcm
from bridge.speech.visemes import (
    WEIGHT_SILENCE,
    Alignment,
    EspeakReference,
    Viseme,
    align_to_reference,
    visemes_from_phonemes,
)
from bridge.speech.visemes import _frame_energy_db as frame_energy_db
from bridge.speech.visemes import _placed as placed_units
from bridge.speech.visemes import _speech_frames as speech_frames

#: Before any segment of a voice was aligned: its speech takes this long per ms of
#: espeak's (espeak speaks 175 words a minute; piper's joe-medium measured 0.91 over the
#: sentences of bench/viseme_accuracy.py; a neutral prior, learned away after one line) ...
DEFAULT_RATE = 1.0
#: ... and starts this far into its audio.
DEFAULT_ONSET_MS = 60.0
#: How much a new precise alignment moves the learned figures (after the first, which
#: replaces the defaults): a voice's pace varies from line to line.
LEARN_WEIGHT = 0.3
#: Learned rates are clamped to this range (an alignment gone wrong must not wreck the next).
RATE_RANGE = (0.4, 2.5)

#: A partial alignment is due once this much audio has arrived ...
PARTIAL_FIRST_MS = 250.0
#: ... and again each time the audio has grown by this factor since the last one (each
#: costs about as much as aligning what has arrived, so the total stays a few alignments).
PARTIAL_GROWTH = 1.2
#: The received audio's speech onset is read from loudness once this much has arrived.
ONSET_MIN_MS = 60.0

Job = Literal["partial", "whole"]


@dataclass
class VoiceRate:
    """How a voice speaks compared with espeak: time per espeak time, and its lead-in."""

    rate: float = DEFAULT_RATE
    onset_ms: float = DEFAULT_ONSET_MS
    learned: int = 0

    def learn(self, alignment: Alignment) -> None:
        """Take in a whole segment's precise alignment."""
        weight = max(LEARN_WEIGHT, 1.0 / (self.learned + 1))
        rate = min(max(alignment.rate, RATE_RANGE[0]), RATE_RANGE[1])
        self.rate += weight * (rate - self.rate)
        self.onset_ms += weight * (alignment.speech_start_ms - self.onset_ms)
        self.learned += 1


class VoiceRates:
    """The learned `VoiceRate` of every (TTS module, voice) of this process.

    Keyed weakly by the module object, so a module closed and dropped takes its figures."""

    def __init__(self) -> None:
        self._by_module: weakref.WeakKeyDictionary[object, dict[str | None, VoiceRate]] = weakref.WeakKeyDictionary()

    def of(self, module: object, voice: str | None) -> VoiceRate:
        voices = self._by_module.setdefault(module, {})
        return voices.setdefault(voice, VoiceRate())

    def known(self, module: object) -> bool:
        """Whether any segment of this module was seen untimed (it is an untimed voice)."""
        return bool(self._by_module.get(module))


RATES = VoiceRates()


def loudness_visemes(chunk: np.ndarray, sample_rate: int, start_ms: float) -> list[Viseme]:
    """A chunk's mouth from its loudness alone: open when loud, closed when quiet.

    For the rare chunk sent before espeak's rendering of the text is ready (a crowd queued
    the renderings): rough, but the mouth moves with the sound instead of staying shut."""
    if chunk.size == 0:
        return []
    level = float(np.sqrt(np.mean(pcm.to_float32(chunk).astype(np.float64) ** 2)))
    db = 20.0 * math.log10(max(level, 1e-7))
    if db < -40.0:
        return [Viseme(start_ms, "sil", WEIGHT_SILENCE)]
    return [Viseme(start_ms, "aa", round(min(1.0, max(0.3, (db + 40.0) / 30.0)), 2))]


@dataclass
class StreamingAlignment:
    """The timeline of one untimed segment as its audio arrives; see the module docstring."""

    text: str
    voice_rate: VoiceRate
    espeak_voice: str = espeak.DEFAULT_VOICE
    reference: EspeakReference | None = None
    has_reference: bool = False  # set_reference was called (the reference may be None)
    sample_rate: int | None = None
    complete: bool = False
    playing: bool = False  # its chunks are being sent: only then is a partial alignment worth it
    kind: Literal["none", "provisional", "partial", "whole"] = "none"
    visemes: list[Viseme] = field(default_factory=list)
    _pieces: list[np.ndarray] = field(default_factory=list)
    _received: int = 0
    _partial_at_ms: float = 0.0  # received audio at the last partial alignment
    _onset_fixed: bool = False
    _whole_failed: bool = False

    # ----------------------------------------------------------------- input

    def set_reference(self, ref: EspeakReference | None) -> None:
        self.reference, self.has_reference = ref, True
        if ref is None:  # espeak says nothing for this text: a closed mouth throughout
            self.visemes, self.kind = [Viseme(0.0, "sil", WEIGHT_SILENCE)], "whole"

    def add(self, samples: np.ndarray, sample_rate: int) -> None:
        if self.sample_rate is None:
            self.sample_rate = sample_rate
        if samples.size:
            self._pieces.append(np.asarray(samples, dtype=np.int16).reshape(-1))
            self._received += samples.size

    def finish(self) -> None:
        self.complete = True

    @property
    def received_ms(self) -> float:
        return 1000.0 * self._received / self.sample_rate if self.sample_rate else 0.0

    def audio(self) -> np.ndarray:
        """Everything received so far (a copy a worker thread may read while more arrives)."""
        if len(self._pieces) > 1:
            self._pieces = [np.concatenate(self._pieces)]
        return self._pieces[0].copy() if self._pieces else np.zeros(0, np.int16)

    # ----------------------------------------------------------------- the timelines

    def current(self) -> list[Viseme] | None:
        """The best timeline now (None: no reference yet, use `loudness_visemes`)."""
        if self.kind in ("partial", "whole"):
            return self.visemes
        if not self.has_reference:
            return None
        if not self._onset_fixed:
            self._provisional()
        return self.visemes

    def _provisional(self) -> None:
        ref = self.reference
        assert ref is not None
        onset = self.voice_rate.onset_ms
        if self.sample_rate and self.received_ms >= ONSET_MIN_MS:
            speech = speech_frames(frame_energy_db(self.audio(), self.sample_rate))
            if speech.sum() >= 3:
                onset = float(np.argmax(speech)) * pcm.FEATURE_HOP_MS
                self._onset_fixed = True
            else:
                onset = max(onset, self.received_ms)  # silence so far: speech starts later
        hop = pcm.FEATURE_HOP_MS
        mapped = onset + (ref.times - ref.r0 * hop) * self.voice_rate.rate
        self.visemes = visemes_from_phonemes(placed_units(ref.phonemes, mapped, onset, math.inf))
        self.kind = "provisional"

    # ----------------------------------------------------------------- the alignment jobs

    def next_job(self) -> Job | None:
        """The alignment worth running now, if any."""
        if self.reference is None or self.kind == "whole":
            return None
        if self.complete:
            return None if self._whole_failed else "whole"
        if not self.playing:
            return None  # synthesized ahead: the whole alignment will be there first
        due = max(PARTIAL_FIRST_MS, self._partial_at_ms * PARTIAL_GROWTH)
        return "partial" if self.received_ms >= due else None

    def run_job(self, job: Job, samples: np.ndarray, should_stop: Callable[[], bool] | None = None) -> Alignment | None:
        """Do `job` on `samples` (`audio()` when it was due). Blocks: a worker thread's work."""
        assert self.reference is not None and self.sample_rate is not None
        return align_to_reference(
            samples, self.sample_rate, self.reference, partial=job == "partial", rate=self.voice_rate.rate, should_stop=should_stop
        )

    def apply(self, job: Job, alignment: Alignment | None, samples_ms: float) -> None:
        """Take a finished job's result (`samples_ms`: how much audio it saw)."""
        if job == "partial":
            self._partial_at_ms = samples_ms
            if alignment is not None and self.kind != "whole":
                self.visemes, self.kind = visemes_from_phonemes(alignment.units), "partial"
            return
        if alignment is None:
            self._whole_failed = True
            if self.kind in ("none", "provisional"):
                self.visemes, self.kind = [Viseme(0.0, "sil", WEIGHT_SILENCE)], "whole"
            return
        self.visemes, self.kind = visemes_from_phonemes(alignment.units), "whole"
        self.voice_rate.learn(alignment)
