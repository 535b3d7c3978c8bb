"""Transcribing while the player speaks: when to decode the growing utterance, and what to keep.

Whisper-type recognizers are not streaming: a partial transcript is a decode of the whole
utterance so far, and each costs about as much as the final one (the encoder always sees a
30 s window). So the work is bounded here:

- a partial decode starts once `interval_ms` of new audio has come since the previous one
  started (the character option `partial_interval_ms`), and once more when the voice
  pauses; never when nothing voiced came since the last one (`TAIL_PAUSE_MS` of silence after the last voiced frame), so that a decode
  covering everything the player said is under way as soon as the speech ends;
- at most one partial decode per entity runs at a time; one that falls due while the
  previous is still running is skipped (the next one, started later, hears more anyway);
- the interval stretches to twice the last decode's duration when decodes are slow (a
  loaded machine), so partials never keep the recognizer busy more than about half the
  time: a decode still running when the speech ends delays the final one (a local model
  cannot be stopped mid-window), so they must not run back to back;
- none starts while the entity's other transcriptions fill the issue-11 bound
  (`MAX_PENDING_TRANSCRIPTIONS`, counted with the running partial).

When the utterance ends, a partial decode whose audio reached past the last voiced frame
heard everything the final one would (only silence came after), so its text *is* the final
transcript: the final is ready when that decode is, often before the VAD's silence window
has even closed. Otherwise the running partial is cancelled and the utterance decoded whole.

`PartialSchedule` is sans-I/O (stream sample positions in, decisions out); the listener
runs the decodes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import trio

#: Silence after the last voiced frame that starts the decode meant to become the final one.
TAIL_PAUSE_MS = 64


@dataclass(eq=False)
class PartialJob:
    """One partial decode: of stream samples up to `end`, of utterance number `utterance`."""

    utterance: int
    end: int
    started_at: float = 0.0  # the listener's clock (trio time), for the interval's back-off
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    done: trio.Event = field(default_factory=trio.Event)
    text: str | None = None  # None until it succeeded (and for ever if it failed or was cancelled)

    def covers(self, voiced_end: int) -> bool:
        """True if the decoded audio reached the end of the last voiced frame."""
        return self.end >= voiced_end


class PartialSchedule:
    """Which partial decode is due, for one microphone stream (16 kHz sample positions)."""

    def __init__(self, interval_ms: float, sample_rate: int = 16000, tail_pause_ms: float = TAIL_PAUSE_MS) -> None:
        if interval_ms <= 0:
            raise ValueError(f"interval_ms must be positive, got {interval_ms}")
        self.interval = round(interval_ms * sample_rate / 1000)
        self.tail_pause = round(tail_pause_ms * sample_rate / 1000)
        self.utterance = 0  # number of the utterance in progress (0: none yet)
        self.running: PartialJob | None = None
        self.latest: PartialJob | None = None  # the last started job of this utterance
        self._since = 0  # where the interval counts from
        self.sample_rate = sample_rate
        self._backoff = 0  # samples: twice the last decode's duration (see module docstring)

    def start_utterance(self, position: int) -> None:
        self.utterance += 1
        self.latest = None
        self._since = position

    def due(self, position: int, voiced_end: int) -> bool:
        """Should a partial decode of the audio up to `position` start now?"""
        if self.running is not None:
            return False  # skip: never more than one per entity
        if self.latest is not None and self.latest.covers(voiced_end):
            return False  # nothing voiced since the last decode: decoding silence adds nothing
        if position - self._since >= max(self.interval, self._backoff):
            return True
        return position - voiced_end >= self.tail_pause

    def begin(self, position: int, now: float = 0.0) -> PartialJob:
        job = PartialJob(self.utterance, position, now)
        self.running = self.latest = job
        self._since = position
        return job

    def finished(self, job: PartialJob, now: float | None = None) -> None:
        """`job` is over; `now` (same clock as `begin`) when it succeeded, for the back-off."""
        if now is not None:
            self._backoff = round(2 * max(0.0, now - job.started_at) * self.sample_rate)
        if self.running is job:
            self.running = None

    def end_utterance(self, voiced_end: int) -> PartialJob | None:
        """The utterance is over: the job whose text can be its final transcript, if any.

        Any other running job is cancelled (its audio misses the end of the speech).
        """
        job = self.latest
        reusable = job if job is not None and job.utterance == self.utterance and job.covers(voiced_end) else None
        if self.running is not None and self.running is not reusable:
            self.running.scope.cancel()
        self.latest = None
        return reusable

    def cancel(self) -> None:
        """Listening stopped or the utterance was cut: drop whatever is running."""
        if self.running is not None:
            self.running.scope.cancel()
        self.latest = None
