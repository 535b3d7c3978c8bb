"""One turn's paced frames, held in the connection's outbox until their release time.

Why the writer releases paced audio itself: a speaker that sleeps until each chunk's time
and then queues it makes the chunk wait for two scheduler passes after its time (the
speaker's wake-up, then the writer's), and under a crowd a pass lasts up to ~140 ms of CPU,
so two of them ate the 200 ms lead (issue 11 item 13). Here the speaker queues a turn's
frames ahead of time, each with the trio time it may go out at, and the writer, which sleeps
until the earliest release time of all its streams, takes them out itself: one pass.

A frame is *released* when the writer takes it into a write; only then is the stream's
`on_release` called with the frame's tag (what was heard, the late-chunk metric count
released frames, never queued ones). An interrupt withdraws what was not released, so
nothing of the turn goes out after it.

Held frames are plain tuples of a float, the encoded bytes and a tag of numbers (no
closure or object per frame): a crowd holds thousands of them at any moment, and objects
the garbage collector tracks that live that long trigger, and lengthen, its collections
(measured: 3x the collections of the old path with a closure per chunk).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import trio

from bridge.character.ports import ClientGone
from bridge.protocol.envelope import Event

if TYPE_CHECKING:
    from bridge.server.outbox import Outbox


class TurnStream:
    """Frames of one turn, in order, each released no earlier than `batch_s` before its time.

    `put` never reorders: a frame's release time is at least that of the frame before it, so
    an event put without a time (`ai.speech.end`, the next segment's `ai.speech.start`) goes
    out right behind the audio queued before it.
    """

    def __init__(self, outbox: "Outbox", batch_s: float, on_release: Callable[[Any], None] | None = None) -> None:
        self._outbox = outbox
        self.batch_s = batch_s  # released this much early with a due frame: one write, not several
        self.on_release = on_release  # called with the tag of each tagged frame as it is released
        # (release trio time, encoded frame, tag or None), in order
        self._held: deque[tuple[float, bytes | str, Any]] = deque()
        self._last_release = -math.inf
        self.closed = False  # no more frames will come (the turn's speech is over or withdrawn)
        self._drained = trio.Event()

    def __len__(self) -> int:
        return len(self._held)

    @property
    def next_release(self) -> float:
        """The release time of the next frame to go (inf when none is held)."""
        return self._held[0][0] if self._held else math.inf

    def put(self, event: Event, release: float | None = None, tag: Any = None) -> None:
        """Hold `event` until `release` (trio time; None: as soon as the frame before it);
        `on_release` gets `tag` when it goes (None: not called).

        After `withdraw` (an interrupt) the frame is dropped: the speaker may run a step
        before its cancellation reaches it, and what it puts then must not go out."""
        if self._outbox.closed:
            raise ClientGone()
        if self.closed:
            return
        data = self._outbox.encode_held(event)
        if data is None:
            return  # over the frame limit: dropped (logged), as the outbox does
        when = self._last_release if release is None else max(release, self._last_release)
        self._last_release = when
        self._held.append((when, data, tag))
        self._outbox.held_frames += 1
        self._outbox.wake_writer(when)

    async def room(self) -> None:
        """Wait while the connection holds as many frames as its queue may (a client that
        does not read); raises ClientGone, dropping the client, if no room comes in time."""
        await self._outbox.wait_for_room()

    def take_due(self, now: float, frames: list[bytes | str]) -> None:
        """Append the frames due by `now` (plus `batch_s`) to `frames`, releasing them."""
        limit = now + self.batch_s
        held = self._held
        taken = 0
        while held and held[0][0] <= limit:
            _, data, tag = held.popleft()
            taken += 1
            frames.append(data)
            if tag is not None and self.on_release is not None:
                self.on_release(tag)
        self._outbox.held_frames -= taken
        if self.closed and not held:
            self._drained.set()
            self._outbox.forget(self)

    def withdraw(self) -> int:
        """Drop every frame not released yet (an interrupt, a failed turn): how many."""
        dropped = len(self._held)
        self._outbox.held_frames -= dropped
        self._held.clear()
        self.close()
        return dropped

    def close(self) -> None:
        """No more frames: the outbox forgets the stream once its last frame is released."""
        self.closed = True
        if not self._held:
            self._drained.set()
            self._outbox.forget(self)

    async def drained(self) -> None:
        """Wait until every frame put was released (after `close`)."""
        await self._drained.wait()
