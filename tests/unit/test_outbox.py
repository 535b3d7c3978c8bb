"""bridge.server.outbox: what the connection's writer hands to the socket per write.

The writer's `send` is its seam to the socket (`ws_write.send_frames` in the server); here
it records what it is given, so the frames of each write are checked exactly."""

from __future__ import annotations

import time

import msgpack
import trio
import trio.testing

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
