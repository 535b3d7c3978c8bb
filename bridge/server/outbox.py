"""The one writer of a connection.

Everybody who has something for the client puts it in a bounded queue; one task takes it
out and calls `send()`. That keeps frames whole (websockets.trio must never see a `send()`
cancelled mid-frame) and turns a client that stops reading into a full queue, which we
notice and answer by aborting that connection, never by blocking the reader or other
connections.

Paced speech does not wait in that queue: a turn's speaker holds its frames in a
`TurnStream` of the outbox, each with its release time, and the writer releases them
itself when they are due (`bridge.server.turn_stream` says why), in the same writes as the
queued frames.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable
from typing import Any

import trio

from bridge.character.ports import ClientGone
from bridge.protocol.codec import Framing
from bridge.protocol.envelope import Event
from bridge.protocol.session import ProtocolSession
from bridge.server.turn_stream import TurnStream

log = logging.getLogger(__name__)

#: How long a producer waits for room in a full queue before the client counts as stalled.
STALL_TIMEOUT_S = 5.0

#: Most bytes the writer hands to the socket in one write (it always takes at least one
#: frame). A crowd's paced audio comes out of one scheduler batch together (50 speakers on
#: a connection release their chunks within the same few ms); one write for all of them
#: instead of one each saves a system call and a wake-up of the client per frame. The
#: bound is in bytes, not frames: a writer that may take only a few dozen frames each
#: time it runs drains a few dozen per scheduler pass, and when the event loop is busy
#: (passes of tens of ms with 200 speakers) the queue then grows by seconds of audio
#: (measured: frames waited up to 5.4 s with a bound of 64 frames). ~1 MB is ~500 chunks
#: of 40 ms audio at 24 kHz, seconds of a whole connection's crowd.
MAX_WRITE_BYTES = 1 << 20


class OversizedEvent(Exception):
    """An event (not a reply) that would not fit in one frame: dropped instead of sent."""


class Outbox:
    def __init__(
        self,
        session: ProtocolSession,
        capacity: int,
        on_stall: Callable[[], Any],
        *,
        stall_timeout: float = STALL_TIMEOUT_S,
        inspect: Callable[[Event], None] | None = None,
    ) -> None:
        self.session = session
        self._inspect = inspect  # sees every event sent (tests validate them against schemas/)
        self._send, self._receive = trio.open_memory_channel[bytes | str](capacity)
        self._on_stall = on_stall
        self._stall_timeout = stall_timeout
        self._ids = itertools.count(1)
        self.closed = False
        self.sent_events = 0
        self._capacity = capacity
        self._streams: list[TurnStream] = []  # paced turns' frames, released by the writer
        self.held_frames = 0  # frames held in those streams, not released yet
        self._room = trio.Event()  # set when the writer takes held frames
        self._sleep: trio.CancelScope | None = None  # the writer's wait, while it waits

    # ------------------------------------------------------------ paced streams

    def open_stream(self, batch_s: float, on_release: Callable[[Any], None] | None = None) -> TurnStream:
        """A stream of paced frames for one turn (its speech), released by the writer;
        `on_release` gets the tag of each tagged frame as it is released."""
        stream = TurnStream(self, batch_s, on_release)
        self._streams.append(stream)
        return stream

    def forget(self, stream: TurnStream) -> None:
        """A closed stream whose frames were all released (or withdrawn)."""
        try:
            self._streams.remove(stream)
        except ValueError:
            pass

    def encode_held(self, event: Event) -> bytes | str | None:
        """`event` encoded for a stream; None when it is over the frame limit (dropped)."""
        try:
            return self._encode(event, None)
        except OversizedEvent:
            return None

    def wake_writer(self, release: float) -> None:
        """A frame due at `release` was put: the writer wakes by then."""
        if self._sleep is not None and release < self._sleep.deadline:
            self._sleep.deadline = release

    async def wait_for_room(self) -> None:
        """Wait while the streams hold `capacity` frames or more, bounded by the stall timeout."""
        if self.held_frames < self._capacity:
            return
        if self.closed:
            raise ClientGone()
        with trio.move_on_after(self._stall_timeout):
            while self.held_frames >= self._capacity:
                await self._room.wait()
            return
        log.warning("client did not read for %.1f s: dropping it", self._stall_timeout)
        self._stall()
        raise ClientGone()

    def _take_due(self) -> list[bytes | str]:
        """The streams' frames due now, released (streams in the order they were opened)."""
        frames: list[bytes | str] = []
        if self.held_frames:
            now = trio.current_time()
            for stream in list(self._streams):
                stream.take_due(now, frames)
            if frames:
                self._room.set()
                self._room = trio.Event()
        return frames

    def _next_release(self) -> float:
        return min((s.next_release for s in self._streams), default=math.inf)

    def next_id(self) -> str:
        return f"b{next(self._ids)}"

    def _encode(self, event: Event, framing: Framing | None) -> bytes | str:
        data = self.session.encode(event, framing)
        limits = getattr(self.session, "limits", None)  # other wire protocols (compat/) bring their own framing
        limit = limits.max_frame_bytes if limits is not None else None
        if limit is not None and len(data) > limit:
            # Never send what the client may not accept (the hello announces the limit; a
            # client closes with 1009 and loses its entities). A final reply still arrives,
            # as an error; anything else is dropped, and logged.
            log.warning("an outbound %s of %d bytes is over the %d-byte frame limit", event.type, len(data), limit)
            if event.status not in ("success", "error"):
                raise OversizedEvent(event.type)
            event = Event(
                event.type,
                event.id,
                {"code": "too_large", "message": f"the {event.type} reply would be {len(data)} bytes, over the {limit}-byte frame limit"},
                entity=event.entity,
                status="error",
            )
            data = self.session.encode(event, framing)
        if self._inspect is not None:
            self._inspect(event)
        return data

    def put_nowait(self, event: Event, framing: Framing | None = None) -> bool:
        """Queue an event without waiting; False (and the client dropped) if the queue is full."""
        if self.closed:
            return False
        try:
            self._send.send_nowait(self._encode(event, framing))
            return True
        except OversizedEvent:
            return True  # dropped on purpose (logged); the client is fine
        except trio.WouldBlock:
            log.warning("client queue full: dropping a client that does not read")
            self._stall()
            return False
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            return False

    async def put(self, event: Event, framing: Framing | None = None) -> None:
        """Queue an event, waiting a bounded time for room; raises ClientGone if it never comes."""
        if self.closed:
            raise ClientGone()
        try:
            data = self._encode(event, framing)
        except OversizedEvent:
            return
        try:
            self._send.send_nowait(data)
            return
        except trio.WouldBlock:
            pass
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise ClientGone() from None
        with trio.move_on_after(self._stall_timeout):
            try:
                await self._send.send(data)
                return
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                raise ClientGone() from None
        log.warning("client did not read for %.1f s: dropping it", self._stall_timeout)
        self._stall()
        raise ClientGone()

    def _stall(self) -> None:
        if not self.closed:
            self.close()
            self._on_stall()

    def close(self) -> None:
        self.closed = True
        self._send.close()

    async def run_writer(self, send: Callable[[list[bytes | str]], Any]) -> None:
        """Drain the queue and the due frames of the streams into the socket until the queue
        is closed: `send` gets, in one list to write at once, the streams' frames due now
        (see `TurnStream.take_due`) and then every frame queued at that moment (up to
        `MAX_WRITE_BYTES`), in order.

        Frames already queued or due are taken without a checkpoint (`send` has its own):
        under load each checkpoint waits a whole scheduler pass, so a receive per write
        would add a pass to the wait of every frame. With nothing to take, the writer waits
        for a queued frame or the earliest release time of its streams, whichever comes
        first (a stream that gets an earlier frame moves that wait's deadline)."""
        async with self._receive:
            while True:
                frames = self._take_due()
                frames += self._take_queued(sum(len(f) for f in frames))
                if not frames:
                    with trio.move_on_at(self._next_release()) as sleep:
                        self._sleep = sleep
                        try:
                            first = await self._receive.receive()
                        except trio.EndOfChannel:
                            return
                        finally:
                            self._sleep = None
                    if sleep.cancelled_caught:
                        continue  # a release time came
                    frames = self._take_due()
                    frames += [first, *self._take_queued(sum(len(f) for f in frames) + len(first))]
                await send(frames)
                self.sent_events += len(frames)

    def _take_queued(self, size: int) -> list[bytes | str]:
        """The frames queued now, in order, until `size` plus theirs reaches MAX_WRITE_BYTES."""
        frames: list[bytes | str] = []
        while size < MAX_WRITE_BYTES:
            try:
                data = self._receive.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel):
                break
            frames.append(data)
            size += len(data)
        return frames
