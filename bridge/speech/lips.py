"""Runs one untimed segment's `StreamingAlignment` under trio (the speaker's side of it).

The synthesizer feeds it audio as the TTS sends it (`add`, `finish`); a task per segment
(`run`) gets espeak's rendering of the text, then does each alignment job as it falls due,
in a worker thread under the aligner limiter the speaker's other alignments share. The
streamer reads `current()` for every chunk and never waits for any of it, except that a
segment whose audio is complete before its first chunk may wait up to the speaker's
alignment deadline for its precise timeline (`wait_whole`).

Under load the work sheds itself: a partial alignment is skipped while the aligner is busy
(the next one, or the whole one, supersedes it), and `close()` (the segment's last chunk has
gone) abandons whatever is queued or running.
"""

from __future__ import annotations

import logging

import numpy as np
import trio

from bridge.media.phonemize import DEFAULT_VOICE, EspeakError
from bridge.speech.provisional import StreamingAlignment, VoiceRate, loudness_visemes
from bridge.speech.visemes import AlignmentAbandoned, Viseme, espeak_reference

log = logging.getLogger(__name__)


class UntimedLips:
    """The visemes of one untimed segment while it streams; see the module docstring."""

    def __init__(self, text: str, voice_rate: VoiceRate, *, aligner: trio.CapacityLimiter, renderer: trio.CapacityLimiter) -> None:
        self.state = StreamingAlignment(text, voice_rate)
        self._aligner = aligner
        self._renderer = renderer
        self._changed = trio.Event()
        self._settled = trio.Event()  # the whole alignment is in, failed, or was given up
        self._scope = trio.CancelScope()

    # ----------------------------------------------------------------- fed by the synthesizer

    def add(self, samples: np.ndarray, sample_rate: int) -> None:
        self.state.add(samples, sample_rate)
        self._changed.set()

    def finish(self) -> None:
        self.state.finish()
        self._changed.set()

    # ----------------------------------------------------------------- read by the streamer

    def current(self, chunk: np.ndarray, sample_rate: int, start_ms: float) -> list[Viseme]:
        """The timeline for a chunk starting at `start_ms` (`chunk` at `sample_rate`)."""
        timeline = self.state.current()
        return timeline if timeline is not None else loudness_visemes(chunk, sample_rate, start_ms)

    def playing(self) -> None:
        """The streamer has started sending this segment: partial alignments may help now."""
        self.state.playing = True
        self._changed.set()

    @property
    def complete(self) -> bool:
        return self.state.complete

    async def wait_whole(self, timeout_s: float) -> None:
        with trio.move_on_after(timeout_s):
            await self._settled.wait()

    def close(self) -> None:
        """The segment has been sent: stop aligning it."""
        self._scope.cancel()

    # ----------------------------------------------------------------- the task

    async def run(self) -> None:
        stop = False

        def should_stop() -> bool:
            return stop

        state = self.state
        try:
            with self._scope:
                try:
                    ref = await trio.to_thread.run_sync(
                        espeak_reference, state.text, DEFAULT_VOICE, should_stop, limiter=self._renderer, abandon_on_cancel=True
                    )
                except EspeakError as exc:
                    log.warning("no visemes for an untimed voice: %s", exc)
                    ref = None
                state.set_reference(ref)
                self._changed.set()
                while state.kind != "whole":
                    job = state.next_job()
                    busy = self._aligner.borrowed_tokens >= self._aligner.total_tokens
                    if job is None or (job == "partial" and busy):
                        self._changed = trio.Event()
                        await self._changed.wait()
                        continue
                    samples = state.audio()
                    seen_ms = 1000.0 * samples.size / (state.sample_rate or 1)
                    try:
                        result = await trio.to_thread.run_sync(
                            state.run_job, job, samples, should_stop, limiter=self._aligner, abandon_on_cancel=True
                        )
                    except AlignmentAbandoned:  # pragma: no cover - stop is only set below
                        result = None
                    state.apply(job, result, seen_ms)
        finally:
            stop = True  # an abandoned thread raises AlignmentAbandoned into the void
            self._settled.set()
