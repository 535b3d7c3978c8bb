"""The hand-over of one segment's audio from the task reading the TTS to the task streaming
it: bounded by audio time, so the reader stops reading once playback has enough.

Why a bound: a TTS faster than real time (any remote voice, and every fake) can hand over a
whole line at once. Unbounded, each character that starts speaking reads, decodes and
queues its whole line in one go; when a crowd starts within a second, that bulk work queued
in front of the paced chunks of everyone already talking (trio has no priorities) and made
them late, and every line sat in memory whole. Bounded, the reader stops after `limit_ms`
of queued audio; the TTS connection then holds the rest (TCP backpressure), and reading
resumes as the streamer takes pieces, spread over the line's playback.

The streamer must be able to take everything when it needs to (aligning untimed audio
waits for the whole segment): it simply keeps taking, and the reader keeps refilling.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType

import trio

from bridge.providers.base import SpeechAudio

#: Audio queued between the reader and the streamer beyond the piece being streamed. With
#: the client's `lead_ms` (200) already sent ahead of playback and the streamer holding the
#: piece it is cutting, this is margin for the reader to be scheduled and the TCP window to
#: reopen; the kernel's socket buffer holds the next ~1-3 s of PCM anyway.
READ_AHEAD_MS = 500.0


def piece_ms(piece: SpeechAudio) -> float:
    """How long a piece of audio plays."""
    rate = piece.sample_rate or 1
    return len(piece.samples) * 1000.0 / rate


class ReadAhead:
    """A queue of SpeechAudio pieces holding at most about `limit_ms` of audio.

    Writer side: `await put(piece)` (returns at once while the queue holds less than the
    limit, else once it has drained below half of it; one piece always fits, however long), `close()` or `with ahead.writing():` when done.
    Reader side: `async for piece in ahead` until the writer closed it; `async with ahead`
    (or `aclose()`) says the reader is gone, after which `put` raises
    `trio.BrokenResourceError` as a memory channel would.
    """

    def __init__(self, limit_ms: float = READ_AHEAD_MS) -> None:
        self.limit_ms = limit_ms
        self._pieces: deque[SpeechAudio] = deque()
        self._queued_ms = 0.0
        self._written = False  # writer closed: no more pieces
        self._gone = False  # reader closed
        self._data = trio.lowlevel.ParkingLot()
        self._room = trio.lowlevel.ParkingLot()
        #: Most audio ever queued at once (ms): what the bound is checked by.
        self.peak_ms = 0.0

    @property
    def queued_ms(self) -> float:
        return self._queued_ms

    # ------------------------------------------------------------------ writer

    async def put(self, piece: SpeechAudio) -> None:
        if self._gone:
            raise trio.BrokenResourceError("the streamer is gone")
        if self._written:
            raise trio.ClosedResourceError("put() after close()")
        self._pieces.append(piece)
        self._queued_ms += piece_ms(piece)
        self.peak_ms = max(self.peak_ms, self._queued_ms)
        self._data.unpark_all()
        if self._queued_ms < self.limit_ms:
            await trio.lowlevel.checkpoint_if_cancelled()
            return
        while self._queued_ms >= self.limit_ms and not self._gone:
            await self._room.park()
        if self._gone:
            raise trio.BrokenResourceError("the streamer is gone")

    def close(self) -> None:
        """No more pieces: the reader ends after taking what is queued."""
        self._written = True
        self._data.unpark_all()

    @contextmanager
    def writing(self) -> Iterator[ReadAhead]:
        try:
            yield self
        finally:
            self.close()

    # ------------------------------------------------------------------ reader

    def __aiter__(self) -> ReadAhead:
        return self

    async def __anext__(self) -> SpeechAudio:
        if self._pieces or self._written:
            await trio.lowlevel.checkpoint()  # as a memory channel's receive() does
        while not self._pieces and not self._written:
            await self._data.park()
        if not self._pieces:
            raise StopAsyncIteration
        piece = self._pieces.popleft()
        self._queued_ms = max(0.0, self._queued_ms - piece_ms(piece))
        if self._queued_ms < self.limit_ms / 2:
            # Half empty: the reader reads a few pieces in one go (TTS servers send many
            # small ones, ~100 ms) instead of waking once per piece.
            self._room.unpark_all()
        return piece

    async def aclose(self) -> None:
        self._gone = True
        self._pieces.clear()
        self._queued_ms = 0.0
        self._room.unpark_all()

    async def __aenter__(self) -> ReadAhead:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()
