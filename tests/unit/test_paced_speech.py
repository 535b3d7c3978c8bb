"""Paced speech under a busy event loop: the batch effect of issue 11 item 13, on trio's
MockClock instead of the wall clock.

With 200 characters speaking, one scheduler pass (the tasks trio runs between two waits for
I/O) lasted up to ~140 ms of CPU, and a chunk due during a pass waits for the pass to end.
A chunk that a speaker queued when it woke for it waited two passes (the speaker's, then the
connection writer's) and arrived after its playback time. Here every pass costs 150 ms on
the mock clock once the line has started (one pass is less than the 200 ms lead, two are
more), and the real `Speaker`, `Turn`, `Outbox` and writer speak a line into a recording
`send`: every chunk must be written by the time it plays, on the writer's clock. The TTS is
an in-process provider (the read side is not what this measures)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import msgpack
import numpy as np
import trio
import trio.testing

from bridge.character.entity import Entity, Turn
from bridge.protocol.envelope import Event
from bridge.protocol.limits import Limits
from bridge.protocol.schema import registry
from bridge.protocol.session import ProtocolSession
from bridge.providers.base import SpeechAudio, TTSRequest
from bridge.server.outbox import Outbox
from bridge.speech.speaker import AudioOut, Speaker

RATE = 24000
PASS_S = 0.15  # what each scheduler pass costs once the line has started
LINE_S = 3.0


class ToneTTS:
    """A TTS in this process: a segment is `LINE_S` of a tone, in pieces of `piece_s`."""

    name = "tone"
    timing = "none"

    def __init__(self, piece_s: float) -> None:
        t = np.arange(round(LINE_S * RATE)) / RATE
        samples = np.rint(0.3 * 32767 * np.sin(2 * np.pi * 220 * t)).astype(np.int16)
        step = round(piece_s * RATE)
        self.pieces = [SpeechAudio(samples[i : i + step], RATE) for i in range(0, len(samples), step)]

    @asynccontextmanager
    async def synthesize(self, request: TTSRequest) -> AsyncIterator[AsyncIterator[SpeechAudio]]:
        async def pieces() -> AsyncIterator[SpeechAudio]:
            for piece in self.pieces:
                await trio.lowlevel.checkpoint()
                yield piece

        yield pieces()

    async def aclose(self) -> None:
        pass


class LongPasses(trio.abc.Instrument):
    """Once `on`, every scheduler pass ends `PASS_S` later on the mock clock than it began:
    all tasks of a pass see the same time, and a deadline that falls inside a pass wakes
    its task in the next one, as on a loop busy with bulk work."""

    def __init__(self, clock: trio.testing.MockClock) -> None:
        self.clock = clock
        self.on = False

    def before_io_wait(self, timeout: float) -> None:
        if self.on:
            self.clock.jump(PASS_S)


async def speak_under_load(clock: trio.testing.MockClock) -> list[tuple[float, int]]:
    """(writer's trio time, chunk `t` ms) of every audio frame of a line spoken while the
    loop's passes are long."""
    passes = LongPasses(clock)
    trio.lowlevel.add_instrument(passes)
    box = Outbox(ProtocolSession(registry(), Limits(), time.monotonic), 512, lambda: None)
    written: list[tuple[float, int]] = []

    async def busy() -> None:  # something runnable in every pass, as in a crowd
        while True:
            await trio.lowlevel.checkpoint()

    async with trio.open_nursery() as nursery:

        async def send(frames: list[bytes | str]) -> None:
            for frame in frames:
                event = msgpack.unpackb(frame)
                if event["type"] == "ai.speech.audio":
                    written.append((trio.current_time(), event["payload"]["t"]))
            if written and not passes.on:
                passes.on = True  # the first chunk is out: from now on the loop is busy
                nursery.start_soon(busy)
            await trio.lowlevel.checkpoint()

        nursery.start_soon(box.run_writer, send)
        entity = Entity("npc", None, box)
        turn = Turn(Event("tts.say", "r1", {"text": "x"}, entity="npc"), entity)
        speaker = Speaker(turn, ToneTTS(1.0), AudioOut(RATE, 40, 200, visemes=False))
        speaker.say("A line of three seconds.")
        speaker.finish()
        await speaker.run()
        nursery.cancel_scope.cancel()
    trio.lowlevel.remove_instrument(passes)
    return written


async def test_every_chunk_is_written_by_its_playback_time_when_each_pass_takes_150_ms(autojump_clock) -> None:
    """The client plays from the first chunk's arrival, so chunk t is late if it is written
    after first + t. Before the writer released paced audio itself, 12-39 of the 75 chunks
    were, by up to 200 ms, in each of 100 runs (which ones depends on trio's order within
    a pass): each waited for the speaker's pass and then the writer's. After, 0 in 300."""
    written = await speak_under_load(autojump_clock)
    assert [t for _, t in written] == list(range(0, 3000, 40)), "the whole line, in order"
    first = written[0][0]
    late = [(t, round((at - first) * 1000 - t)) for at, t in written if at - first > t / 1000 + 1e-9]
    assert late == [], f"chunks written after their playback time (t, ms late): {late}"
    # ...and none was written more than lead + 2 chunks ahead of it.
    assert all(at - first >= t / 1000 - 0.2 - 0.08 - 1e-9 for at, t in written)
