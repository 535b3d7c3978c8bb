"""bridge.server.outbox: what the connection's writer hands to the socket per write.

The writer's `send` is its seam to the socket (`ws_write.send_frames` in the server); here
it records what it is given, so the frames of each write are checked exactly."""

from __future__ import annotations

import time

import msgpack
import pytest
import trio
import trio.testing

from bridge.character.ports import ClientGone
from bridge.protocol.envelope import Event
from bridge.protocol.limits import Limits
from bridge.protocol.schema import registry
from bridge.protocol.session import ProtocolSession
from bridge.server.outbox import MAX_WRITE_BYTES, Outbox


def outbox() -> Outbox:
    session = ProtocolSession(registry(), Limits(), time.monotonic)
    return Outbox(session, 100_000, lambda: None)


def audio(seq: int) -> Event:
    payload = {"speech": "r1.1", "seq": seq, "t": 40 * seq, "audio": b"\x01\x00" * 960, "visemes": [], "volume": [0.5, 0.5, 0.5, 0.5]}
    return Event("ai.speech.audio", f"b{seq}", payload, entity="npc", ref="r1")


async def drain(box: Outbox) -> list[list[bytes | str]]:
    """Run the writer over what is queued (the queue closed behind it): the frames of each write."""
    writes: list[list[bytes | str]] = []

    async def send(frames: list[bytes | str]) -> None:
        writes.append(list(frames))
        await trio.lowlevel.checkpoint()  # a socket write is a checkpoint

    box.close()
    await box.run_writer(send)
    return writes


async def test_a_backlog_of_hundreds_of_chunks_goes_out_in_one_write() -> None:
    """200 audio frames (~400 KB) queued while the writer waited for the socket go out in
    the writer's next write, in order. Before, a write took at most 64 frames, so a busy
    event loop (one write per connection per few scheduler passes) drained a crowd's
    backlog 64 frames at a time and frames waited seconds in the queue."""
    box = outbox()
    for seq in range(200):
        box.put_nowait(audio(seq))
    writes = await drain(box)
    assert [len(w) for w in writes] == [200]
    assert [msgpack.unpackb(f)["payload"]["seq"] for f in writes[0]] == list(range(200))
    assert box.sent_events == 200


async def test_a_write_is_bounded_in_bytes_and_nothing_is_lost() -> None:
    """A backlog of several MB is split into writes of about MAX_WRITE_BYTES each (the
    last frame of a write may cross the bound), every frame once, in order."""
    box = outbox()
    frame_bytes = len(box.session.encode(audio(0)))
    count = 3 * MAX_WRITE_BYTES // frame_bytes + 10
    for seq in range(count):
        box.put_nowait(audio(seq))
    writes = await drain(box)
    assert len(writes) == 4
    for frames in writes[:-1]:
        size = sum(len(f) for f in frames)
        assert MAX_WRITE_BYTES <= size < MAX_WRITE_BYTES + frame_bytes, size
    seqs = [msgpack.unpackb(f)["payload"]["seq"] for frames in writes for f in frames]
    assert seqs == list(range(count))


async def test_frames_queued_while_a_write_is_under_way_go_out_together_next() -> None:
    """The writer waits on an empty queue, takes the first frame put, and with it whatever
    else is queued by then; frames put during that write form the next write."""
    box = outbox()
    writes: list[list[int]] = []
    in_write = trio.Event()
    resume = trio.Event()

    async def send(frames: list[bytes | str]) -> None:
        writes.append([msgpack.unpackb(f)["payload"]["seq"] for f in frames])
        if len(writes) == 1:
            in_write.set()
            await resume.wait()  # the socket is slow: more is queued meanwhile
        await trio.lowlevel.checkpoint()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(box.run_writer, send)
        await trio.testing.wait_all_tasks_blocked()
        box.put_nowait(audio(0))
        await in_write.wait()
        for seq in range(1, 101):
            box.put_nowait(audio(seq))
        resume.set()
        await trio.testing.wait_all_tasks_blocked()
        box.close()
    assert writes == [[0], list(range(1, 101))]


# ------------------------------------------------------------------ paced streams
#
# A turn's speech is held in a `TurnStream` of the outbox, each frame with its release time,
# and the writer releases it itself (issue 11 item 13: a chunk queued by a speaker that slept
# until its time waited for that speaker's wake-up and then for the writer's, two scheduler
# passes). These run on trio's MockClock: times are exact, nothing depends on the machine.


def seqs(frames: list[bytes | str]) -> list[object]:
    out: list[object] = []
    for frame in frames:
        event = msgpack.unpackb(frame)
        out.append(event["payload"]["seq"] if event["type"] == "ai.speech.audio" else event["type"])
    return out


def other(seq: int) -> Event:
    """An audio frame of another turn (speech r2.1)."""
    event = audio(seq)
    return Event(event.type, f"c{seq}", {**event.payload, "speech": "r2.1", "seq": 100 + seq}, entity="npc2", ref="r2")


class Recorder:
    """The writer's `send`: the trio time and the frames of each write."""

    def __init__(self) -> None:
        self.writes: list[tuple[float, list[object]]] = []

    async def __call__(self, frames: list[bytes | str]) -> None:
        self.writes.append((trio.current_time(), seqs(frames)))
        await trio.lowlevel.checkpoint()


async def test_due_frames_of_every_stream_go_out_together_at_the_earliest_release_time(autojump_clock) -> None:
    """The writer sleeps until the earliest release time of its streams, then takes every
    frame due by then plus two chunk lengths (0.08 s), of every stream, in one write; a
    frame is released (the stream's `on_release` gets its tag) when the writer takes it."""
    box = outbox()
    send = Recorder()
    released: list[tuple[float, int]] = []
    start = trio.current_time()
    a = box.open_stream(0.08, lambda seq: released.append((trio.current_time() - start, seq)))
    b = box.open_stream(0.08)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(box.run_writer, send)
        for seq, at in enumerate([1.0, 1.04, 1.08, 1.12, 1.2]):
            a.put(audio(seq), start + at, seq)
        b.put(other(0), start + 1.02)
        b.put(other(1), start + 1.3)
        await trio.sleep(0.99)
        assert send.writes == [] and released == [], "nothing goes out before its time"
        await trio.sleep(1.0)
        box.close()
    assert [(round(t - start, 3), frames) for t, frames in send.writes] == [
        (1.0, [0, 1, 2, 100]),
        (1.12, [3, 4]),
        (1.3, [101]),
    ]
    assert [(round(t, 3), seq) for t, seq in released] == [(1.0, 0), (1.0, 1), (1.0, 2), (1.12, 3), (1.12, 4)]
    assert box.sent_events == 7


async def test_a_frame_put_earlier_than_the_writers_wait_wakes_it_and_queued_frames_join(autojump_clock) -> None:
    """The writer waits for a release at +5 s; a frame of another turn due now wakes it at
    once, and a frame queued (not paced) meanwhile goes out in the same write, behind the
    due ones."""
    box = outbox()
    send = Recorder()
    start = trio.current_time()
    stream, later = box.open_stream(0.08), box.open_stream(0.08)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(box.run_writer, send)
        later.put(audio(9), start + 5.0)
        await trio.sleep(1.0)
        stream.put(audio(0), start + 0.5)  # already due: ahead of the wait's deadline
        box.put_nowait(Event("ai.status", "s1", {"mood": "neutral"}, entity="npc"))
        await trio.sleep(10)
        box.close()
    assert [(round(t - start, 3), frames) for t, frames in send.writes] == [
        (1.0, [0, "ai.status"]),
        (5.0, [9]),
    ]


async def test_events_put_without_a_time_stay_behind_the_audio_before_them(autojump_clock) -> None:
    """Order within a turn is kept: `ai.speech.end` put without a release time goes right
    behind the audio queued before it, and a frame put with an earlier time than the one
    before it does not overtake it."""
    box = outbox()
    send = Recorder()
    start = trio.current_time()
    stream = box.open_stream(0.08)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(box.run_writer, send)
        stream.put(audio(0), start + 0.1)
        stream.put(audio(1), start + 0.5)
        stream.put(Event("ai.speech.end", "e1", {"speech": "r1.1", "duration_ms": 80}, entity="npc", ref="r1"))
        stream.put(audio(2), start + 0.2)  # earlier than the frames before it: still after them
        await trio.sleep(1)
        box.close()
    assert [(round(t - start, 3), frames) for t, frames in send.writes] == [(0.1, [0]), (0.5, [1, "ai.speech.end", 2])]


async def test_withdraw_drops_what_was_not_released_and_nothing_of_it_goes_out_later(autojump_clock) -> None:
    """An interrupt withdraws the turn's frames not released yet: the ones released still
    count (their `on_release` ran), the rest never go out, also after the interrupt's
    reply (queued behind the withdraw), and the stream is done (`drained`)."""
    box = outbox()
    send = Recorder()
    start = trio.current_time()
    released: list[int] = []
    stream = box.open_stream(0.08, released.append)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(box.run_writer, send)
        for seq in range(10):
            stream.put(audio(seq), start + 1.0 + 0.04 * seq, seq)
        await trio.sleep(1.1)
        assert stream.withdraw() == 7
        assert box.held_frames == 0
        stream.put(audio(10), start + 1.1)  # the speaker ran a step before its cancellation: dropped
        box.put_nowait(Event("tts.say", "r1", {"code": "cancelled", "message": "interrupted"}, entity="npc", status="error"))
        with trio.fail_after(1):
            await stream.drained()
        await trio.sleep(5)
        box.close()
    assert [(round(t - start, 3), frames) for t, frames in send.writes] == [(1.0, [0, 1, 2]), (1.1, ["tts.say"])]
    assert released == [0, 1, 2]


async def test_a_closed_stream_is_drained_once_its_last_frame_is_released(autojump_clock) -> None:
    box = outbox()
    send = Recorder()
    start = trio.current_time()
    stream = box.open_stream(0.0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(box.run_writer, send)
        stream.put(audio(0), start + 2.0)
        stream.close()
        await stream.drained()
        assert trio.current_time() - start == 2.0
        box.close()
    assert [frames for _, frames in send.writes] == [[0]]


async def test_a_client_that_does_not_read_is_dropped_when_held_frames_fill_its_queue(autojump_clock) -> None:
    """Held frames count against the connection's queue: with the socket stuck, a speaker
    waiting for room gives up after the stall timeout, and the client is dropped."""
    stalled: list[bool] = []
    session = ProtocolSession(registry(), Limits(), time.monotonic)
    box = Outbox(session, 4, lambda: stalled.append(True), stall_timeout=5.0)
    stream = box.open_stream(0.08)
    start = trio.current_time()

    async def stuck(frames: list[bytes | str]) -> None:
        await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(box.run_writer, stuck)
        stream.put(audio(0), start)
        await trio.sleep(0.1)  # the writer took it and is stuck in the socket
        for seq in range(1, 5):
            await stream.room()
            stream.put(audio(seq), start + 0.04 * seq)
        with pytest.raises(ClientGone):
            await stream.room()
        assert trio.current_time() - start == pytest.approx(5.1)
        assert stalled == [True]
        nursery.cancel_scope.cancel()
