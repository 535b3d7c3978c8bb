"""CPU per audio chunk on the way out: from a decoded TTS piece to bytes on a client socket.

Why in process: `bench.speech_capacity` measures the whole bridge, whose CPU also pays for
opening and reading the TTS streams, and its late-chunk counts swing with the machine's
load. This runs the real outbound path (`Speaker` streaming segments: resampling, chunking,
volume envelopes, pacing, `Turn.emit`, the connection's `Outbox` with its encoder, frame
check and metrics, `Outbox.run_writer` and the socket write of `bridge.server.ws_write`)
for N speakers on real websockets connections, with an in-process TTS that hands out
ready pieces (no HTTP, no decoding: that is the read side). The client is a thread that
only completes the WebSocket handshake and discards what it receives, so the event loop's
thread CPU time (`time.thread_time`) is the chunk path's alone; it barely changes with
the machine's load, unlike wall-clock figures.

    python -m bench.chunk_path [--speakers 200] [--per-connection 50] [--piece-ms 100]
                               [--seconds 2.4] [--segments 3] [--lead-ms 200] [--repeat 3]

`--lead-ms 0` sends unpaced (as fast as the loop can), `--lead-ms 200` paces as the
bridge does for a client (200 speakers then take the segments' real time).
"""

from __future__ import annotations

import argparse
import base64
import os
import socket
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
import trio
from websockets.trio.server import ServerConnection, serve

from bench.common import machine, percentile, table
from bridge.character.entity import Entity, Turn
from bridge.protocol.envelope import Event
from bridge.protocol.limits import Limits
from bridge.protocol.schema import registry
from bridge.protocol.session import ProtocolSession
from bridge.providers.base import SpeechAudio, TTSRequest
from bridge.server.metrics import BridgeMetrics
from bridge.server.outbox import Outbox
from bridge.server.ws_write import send_frames
from bridge.speech.meter import current_meter
from bridge.speech.speaker import AudioOut, Speaker

RATE = 24000


class PieceTTS:
    """A TTS in this process: each segment is `seconds` of a tone, in pieces of `piece_ms`."""

    name = "pieces"
    timing = "none"

    def __init__(self, seconds: float, piece_ms: float, rate: int = RATE) -> None:
        n = round(seconds * rate)
        t = np.arange(n) / rate
        samples = np.rint(0.3 * 32767 * np.sin(2 * np.pi * 220 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))).astype(np.int16)
        step = max(1, round(piece_ms * rate / 1000))
        self.pieces = [SpeechAudio(samples[i : i + step], rate) for i in range(0, n, step)]

    @asynccontextmanager
    async def synthesize(self, request: TTSRequest) -> AsyncIterator[AsyncIterator[SpeechAudio]]:
        async def pieces() -> AsyncIterator[SpeechAudio]:
            for piece in self.pieces:
                await trio.lowlevel.checkpoint()  # a read from a socket is a checkpoint too
                yield piece

        yield pieces()

    async def aclose(self) -> None:
        pass


def _drain_client(port: int, ready: threading.Event, received: list[int]) -> None:
    """A WebSocket client that reads and discards everything (runs in its own thread)."""
    sock = socket.create_connection(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16))
    sock.sendall(
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(4096)
    ready.set()
    total = len(head.split(b"\r\n\r\n", 1)[1])
    while True:
        data = sock.recv(1 << 20)
        if not data:
            break
        total += len(data)
    received.append(total)
    sock.close()


class Connection:
    """One client connection's outbound half, as `bridge.server.connection` builds it."""

    def __init__(self, ws: ServerConnection, metrics: BridgeMetrics) -> None:
        self.ws = ws
        self.session = ProtocolSession(registry(), Limits(outbound_queue=100000), trio.current_time)
        self.outbox = Outbox(self.session, 100000, lambda: None, inspect=metrics.sent)
        self.metrics = metrics

    async def write(self) -> None:
        async def send(frames: list[Any]) -> None:
            await send_frames(self.ws, frames)
            self.metrics.written(len(frames))

        await self.outbox.run_writer(send)


async def one_run(args: argparse.Namespace) -> dict[str, float]:
    metrics = BridgeMetrics(lambda: 1)
    current_meter.set(metrics)
    tts = PieceTTS(args.seconds, args.piece_ms)
    connections = (args.speakers + args.per_connection - 1) // args.per_connection
    opened: list[Connection] = []
    all_open = trio.Event()
    speakers_done = trio.Event()
    writers_done = trio.Semaphore(0)
    measured: dict[str, float] = {}

    async def handler(ws: ServerConnection) -> None:
        conn = Connection(ws, metrics)
        opened.append(conn)
        if len(opened) == connections:
            all_open.set()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(conn.write)
            await speakers_done.wait()
            conn.outbox.close()  # the writer drains what is queued, then ends
        writers_done.release()

    async with trio.open_nursery() as nursery:
        server = await nursery.start(lambda task_status: serve(handler, 0, host="127.0.0.1", compression=None, task_status=task_status))
        port = server.listeners[0].socket.getsockname()[1]
        received: list[int] = []
        threads = []
        for _ in range(connections):
            ready = threading.Event()
            thread = threading.Thread(target=_drain_client, args=(port, ready, received), daemon=True)
            thread.start()
            threads.append(thread)
        await all_open.wait()

        async def speak(i: int) -> None:
            conn = opened[i // args.per_connection]
            entity = Entity(f"npc-{i}", None, conn.outbox)
            turn = Turn(Event("tts.say", f"r{i}", {"text": "x"}, entity=entity.name), entity)
            speaker = Speaker(turn, tts, AudioOut(RATE, args.chunk_ms, args.lead_ms, visemes=False))
            for k in range(args.segments):
                speaker.say(f"segment {k}")
            speaker.finish()
            await speaker.run()

        cpu0, wall0 = time.thread_time(), time.perf_counter()
        async with trio.open_nursery() as speakers:
            for i in range(args.speakers):
                speakers.start_soon(speak, i)
        speakers_done.set()
        for _ in opened:
            await writers_done.acquire()
        cpu1, wall1 = time.thread_time(), time.perf_counter()
        chunks = metrics.speech_chunks._value.get()
        measured = {"chunks": chunks, "cpu_s": cpu1 - cpu0, "wall_s": wall1 - wall0, "us_per_chunk": (cpu1 - cpu0) / chunks * 1e6}
        nursery.cancel_scope.cancel()
    for thread in threads:
        thread.join(timeout=5)
    return measured


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--speakers", type=int, default=200)
    parser.add_argument("--per-connection", type=int, default=50)
    parser.add_argument("--piece-ms", type=float, default=100.0, help="TTS piece length (the OpenAI fake sends ~100 ms)")
    parser.add_argument("--seconds", type=float, default=2.4, help="audio per segment")
    parser.add_argument("--segments", type=int, default=3)
    parser.add_argument("--chunk-ms", type=int, default=40)
    parser.add_argument("--lead-ms", type=int, default=200, help="0: unpaced")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    rows = []
    for k in range(args.repeat):
        m = trio.run(one_run, args)
        rows.append((f"run {k + 1}", f"{m['chunks']:.0f} chunks, thread CPU {m['cpu_s']:.2f} s in {m['wall_s']:.2f} s wall: {m['us_per_chunk']:.1f} us a chunk"))
    load = open("/proc/loadavg").read().split()[:3]
    print(table(rows, f"chunk path, {args.speakers} speakers, {args.piece_ms:g} ms pieces, lead {args.lead_ms} ms, load {' '.join(load)} ({machine()})"))


if __name__ == "__main__":
    main()
