"""Cutting a microphone stream into utterances: sans-I/O, driven by a frame-level `VAD`.

`VoiceActivitySegmenter.feed()` takes 16 kHz int16 samples in whatever chunks the network
delivered and returns events; it never sleeps, reads a clock or touches a socket, so the
session decides what to do with the events and tests can replay audio faster than real
time. All times are milliseconds of *audio* since the first sample fed (sample counts, not
wall clock): the same audio always gives the same events, however it was chunked.

The state machine follows Silero's own offline segmentation, made streaming:

    idle --p >= threshold--> candidate --voiced span >= min_speech--> speech
      ^                        |                                        |
      +-- silence >= min_silence (a click, a breath: no events) -------+
      +-- silence >= min_silence: SpeechStopped <----------------------+
      +-- buffer reaches max_utterance: UtteranceTooLong <-------------+

Hysteresis: a frame needs `threshold` to *start* speech but only `neg_threshold` (default
`threshold - 0.15`) to keep it alive, and speech only ends after `min_silence_ms` below
that. So one breath, or the dip between two words, does not toggle speech on and off.

`SpeechStarted` is emitted once the speech has lasted `min_speech_ms` (that is how a click
is told apart from a word), but its `t_ms` is when the speech began (the start of the first
frame above `threshold`). `SpeechStopped.t_ms` is the end of the last frame above
`threshold`, less `vad_lag_ms`: Silero's probability trails the sound by about one frame
(measured on piper speech: it stays above 0.5 for 1-2 frames of silence after the last
word), so without the correction ends come out 60-90 ms late. The event itself comes
`min_silence_ms` later. The utterance audio is cut generously instead: from `pad_ms` before
the start to `pad_ms` after the last frame above `neg_threshold`, so the recognizer hears
the first and last consonants whole.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

import numpy as np

from bridge.media.pcm import to_int16
from bridge.providers.base import VAD


def _same_audio(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and bool(np.array_equal(a, b))


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """Speech began at `t_ms` (reported `min_speech_ms` later, once it is surely speech)."""

    t_ms: int


@dataclass(frozen=True, slots=True, eq=False)
class SpeechStopped:
    """Speech ended at `t_ms`; `audio` is the whole utterance (int16, 16 kHz) with padding."""

    t_ms: int
    audio: np.ndarray
    voiced_end: int = 0  # stream sample index where the last voiced frame ended

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SpeechStopped) and self.t_ms == other.t_ms and _same_audio(self.audio, other.audio)


@dataclass(frozen=True, slots=True, eq=False)
class UtteranceTooLong:
    """The utterance buffer reached its bound at `t_ms`; `audio` is what was kept.

    The utterance ends here. If the speaker goes on talking, a new utterance starts (with
    its own `SpeechStarted`) from the next voiced frame, so no audio is sent twice.
    """

    t_ms: int
    audio: np.ndarray

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, UtteranceTooLong) and self.t_ms == other.t_ms and _same_audio(self.audio, other.audio)
        )


VadEvent = SpeechStarted | SpeechStopped | UtteranceTooLong


class _State(enum.Enum):
    IDLE = "idle"
    CANDIDATE = "candidate"  # above threshold, not yet long enough to call speech
    SPEECH = "speech"


class VoiceActivitySegmenter:
    """Turns a stream of samples into SpeechStarted / SpeechStopped / UtteranceTooLong.

    One segmenter (and one stateful `vad`) per microphone stream.
    """

    def __init__(
        self,
        vad: VAD,
        threshold: float = 0.5,
        min_speech_ms: float = 250,
        min_silence_ms: float = 500,
        pad_ms: float = 200,
        max_utterance_s: float = 30,
        neg_threshold: float | None = None,
        vad_lag_ms: float = 32,
    ) -> None:
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must be between 0 and 1, got {threshold}")
        if neg_threshold is None:
            neg_threshold = max(threshold - 0.15, 0.01)
        if not 0.0 < neg_threshold <= threshold:
            raise ValueError(f"neg_threshold must be in (0, threshold], got {neg_threshold}")
        if min(min_speech_ms, min_silence_ms, pad_ms) < 0:
            raise ValueError("min_speech_ms, min_silence_ms and pad_ms must not be negative")
        if max_utterance_s <= 0:
            raise ValueError(f"max_utterance_s must be positive, got {max_utterance_s}")
        self.vad = vad
        self.sample_rate = int(vad.sample_rate)
        self.frame = int(vad.frame_samples)
        self.threshold = threshold
        self.neg_threshold = neg_threshold
        per_ms = self.sample_rate / 1000
        self.min_speech = round(min_speech_ms * per_ms)
        self.min_silence = round(min_silence_ms * per_ms)
        self.pad = round(pad_ms * per_ms)
        self.max_samples = round(max_utterance_s * self.sample_rate)
        self.vad_lag = round(vad_lag_ms * per_ms)
        if self.max_samples <= self.min_speech + self.pad:
            raise ValueError("max_utterance_s must be longer than min_speech_ms plus pad_ms")
        # Frames of pre-roll to keep while idle, so an utterance can start `pad` early.
        self._preroll_frames = math.ceil(self.pad / self.frame)
        self.reset()

    # ------------------------------------------------------------------ public

    def reset(self) -> None:
        """Forget everything, including the clock: the next sample fed is t = 0."""
        reset = getattr(self.vad, "reset", None)
        if callable(reset):
            reset()
        self._pending = np.zeros(0, dtype=np.int16)
        self._position = 0  # absolute index of the next sample to be framed
        self._frames: list[np.ndarray] = []
        self._frames_start = 0  # absolute index of self._frames[0][0]
        self._state = _State.IDLE
        self._onset = 0
        self._last_voiced_end = 0  # end of the last frame >= neg_threshold (keeps speech alive)
        self._last_confident_end = 0  # end of the last frame >= threshold (dates the end)
        self.last_probability = 0.0
        self._hold: tuple[int, int] | None = None  # (until sample, silence samples): see hold_end

    def hold_end(self, until: int, silence_ms: float | None) -> None:
        """End this utterance after `silence_ms` of silence instead of `min_silence_ms`.

        The end-of-turn decision (bridge/speech/turn_end.py) is made on a transcript of the
        audio up to stream sample `until`; it holds only while no voiced frame came after
        that, so speech that goes on falls back to `min_silence_ms` until the next
        decision. `None` clears it. Never shorter than `pad_ms`, which the audio needs.
        """
        if silence_ms is None or self._state is _State.IDLE:
            self._hold = None
            return
        self._hold = (until, round(max(silence_ms, 0) * self.sample_rate / 1000))

    @property
    def position(self) -> int:
        """Stream samples fed so far (including a partial frame)."""
        return self._position + self._pending.size

    @property
    def voiced_end(self) -> int:
        """Stream sample index where the utterance's last voiced frame ended."""
        return self._last_voiced_end

    def utterance_so_far(self) -> np.ndarray | None:
        """While speaking: the utterance's audio from `pad_ms` before its start up to now."""
        if self._state is not _State.SPEECH:
            return None
        return self._audio_between(self._onset - self.pad, self.position)

    def _silence_window(self) -> int:
        hold = self._hold
        if hold is not None and self._last_voiced_end <= hold[0]:
            return max(hold[1], self.pad)
        return max(self.min_silence, self.pad)

    @property
    def speaking(self) -> bool:
        """True between SpeechStarted and the event that ends the utterance."""
        return self._state is _State.SPEECH

    @property
    def position_ms(self) -> int:
        """How much audio has been fed so far, in ms (including a partial frame)."""
        return self._ms(self._position + self._pending.size)

    def feed(self, samples: np.ndarray) -> list[VadEvent]:
        """Feed 16 kHz mono int16 samples of any length; return the events they complete."""
        chunk = to_int16(np.asarray(samples).reshape(-1))
        if self._pending.size:
            chunk = np.concatenate((self._pending, chunk))
            self._pending = np.zeros(0, dtype=np.int16)  # now part of `chunk`
        whole = chunk.size - chunk.size % self.frame
        events: list[VadEvent] = []
        for start in range(0, whole, self.frame):
            # A copy: the caller may reuse its buffer, and we keep frames for the utterance.
            events.extend(self._step(chunk[start : start + self.frame].copy()))
        self._pending = chunk[whole:].copy()
        return events

    def finish(self) -> list[VadEvent]:
        """The stream is ending (listening stopped): close an utterance in progress.

        Speech in progress yields SpeechStopped with the audio so far (trailing padding
        included as far as it was fed); a candidate too short to be speech is dropped. The
        clock keeps running: call `reset()` to start from zero.
        """
        events: list[VadEvent] = []
        end = self._position + self._pending.size
        if self._state is _State.SPEECH:
            audio = self._audio_between(self._onset - self.pad, min(end, self._last_voiced_end + self.pad))
            events.append(SpeechStopped(self._end_ms(), audio, self._last_voiced_end))
        self._hold = None
        self._position = end
        self._pending = np.zeros(0, dtype=np.int16)
        self._frames = []
        self._frames_start = end
        self._state = _State.IDLE
        return events

    # ------------------------------------------------------------------ internals

    def _ms(self, samples: int) -> int:
        return round(samples * 1000 / self.sample_rate)

    def _end_ms(self) -> int:
        """When the speech ended, corrected for the model's lag, never before it began."""
        return self._ms(max(self._onset + self.frame, self._last_confident_end - self.vad_lag))

    def _step(self, frame: np.ndarray) -> list[VadEvent]:
        start = self._position
        end = start + self.frame
        self._position = end
        self._frames.append(frame)
        p = self.vad.probability(frame)
        self.last_probability = p

        if self._state is _State.IDLE:
            if p >= self.threshold:
                self._state = _State.CANDIDATE
                self._hold = None
                self._onset = start
                self._last_voiced_end = self._last_confident_end = end
                return self._check_started()
            self._trim_to_preroll()
            return []

        if p >= self.neg_threshold:
            self._last_voiced_end = end
        if p >= self.threshold:
            self._last_confident_end = end
        silence = end - self._last_voiced_end

        if self._state is _State.CANDIDATE:
            started = self._check_started()
            if started:
                return started + self._check_too_long(end)
            if silence >= self.min_silence:
                self._state = _State.IDLE  # too short to be speech: a click or a breath
                self._trim_to_preroll()
            return []

        # SPEECH
        if silence >= self._silence_window():
            audio = self._audio_between(self._onset - self.pad, self._last_voiced_end + self.pad)
            stopped = SpeechStopped(self._end_ms(), audio, self._last_voiced_end)
            self._state = _State.IDLE
            self._hold = None
            self._trim_to_preroll()
            return [stopped]
        return self._check_too_long(end)

    def _check_started(self) -> list[VadEvent]:
        if self._last_voiced_end - self._onset >= max(self.min_speech, 1):
            self._state = _State.SPEECH
            return [SpeechStarted(self._ms(self._onset))]
        return []

    def _check_too_long(self, end: int) -> list[VadEvent]:
        begin = max(self._onset - self.pad, self._frames_start)
        if end - begin < self.max_samples:
            return []
        audio = self._audio_between(begin, end)
        self._state = _State.IDLE
        self._hold = None
        self._frames = []
        self._frames_start = end
        return [UtteranceTooLong(self._ms(end), audio)]

    def _trim_to_preroll(self) -> None:
        extra = len(self._frames) - self._preroll_frames
        if extra > 0:
            del self._frames[:extra]
            self._frames_start += extra * self.frame

    def _audio_between(self, begin: int, end: int) -> np.ndarray:
        """Samples [begin, end) of the stream, clipped to what is still kept."""
        kept = np.concatenate(self._frames) if self._frames else np.zeros(0, np.int16)
        if self._pending.size:
            kept = np.concatenate((kept, self._pending))
        lo = max(begin, self._frames_start) - self._frames_start
        hi = max(lo, min(end - self._frames_start, kept.size))
        return kept[lo:hi].copy()


class PushToTalkBuffer:
    """Collects audio between `stt.listen.start` and `stt.listen.stop`, with the same bound.

    Times are ms of audio since the first sample fed. When the bound is hit, `feed` returns
    UtteranceTooLong with the audio up to the bound and drops the rest until `stop()`, so
    memory stays bounded however long the button is held.
    """

    def __init__(self, max_utterance_s: float = 30, sample_rate: int = 16000) -> None:
        if max_utterance_s <= 0:
            raise ValueError(f"max_utterance_s must be positive, got {max_utterance_s}")
        self.sample_rate = sample_rate
        self.max_samples = round(max_utterance_s * sample_rate)
        self._chunks: list[np.ndarray] = []
        self._count = 0
        self.overflowed = False

    @property
    def duration_ms(self) -> int:
        return round(self._count * 1000 / self.sample_rate)

    def feed(self, samples: np.ndarray) -> list[VadEvent]:
        if self.overflowed:
            return []
        chunk = to_int16(np.asarray(samples).reshape(-1)).copy()
        room = self.max_samples - self._count
        if chunk.size < room:
            self._chunks.append(chunk)
            self._count += chunk.size
            return []
        self._chunks.append(chunk[:room])
        self._count += room
        self.overflowed = True
        audio = np.concatenate(self._chunks)
        self._chunks = []
        return [UtteranceTooLong(self.duration_ms, audio)]

    def stop(self) -> SpeechStopped | None:
        """End the utterance: its audio, or None if empty or already sent as too long."""
        event = None
        if not self.overflowed and self._count:
            event = SpeechStopped(self.duration_ms, np.concatenate(self._chunks))
        self._chunks = []
        self._count = 0
        self.overflowed = False
        return event
