"""Measurement only, never part of the bridge: loaded into a benchmark's bridge process by
putting this folder first on its PYTHONPATH (`bench.speech_capacity --probe`).

It records, on the process's own clocks, the two things that can hold up a paced chunk
without showing as high CPU: garbage-collector pauses (`gc.callbacks`: wall and thread-CPU
time per collection, by generation) and long scheduler batches (a trio instrument: the
CPU time the event loop spent running tasks between two waits for I/O; a chunk due during
a batch waits for the whole batch, since trio has no priorities). Both are written as JSON
to $BRIDGE_PROBE_OUT when the process exits (the bridge exits cleanly on SIGTERM).
$BRIDGE_PROBE_GC_THRESHOLD ("7000,10,10") sets other collector thresholds, to try them.
$BRIDGE_PROBE_STEPS adds every task step (its task's name, monotonic, thread CPU) and every
wait for I/O to the socket stamps, so a leg can be read step by step (which task ran, how
long, in what order); it costs ~10 us a step, so leave it off for the figures.
$BRIDGE_PROBE_COPY: a second file the record is written to (the bench deletes its own).
With $BRIDGE_PROBE_IO set it also stamps every socket read and write of the bridge
(`bench.speech_latency --probe`): the kind of traffic, `time.monotonic()` (the clock the
fakes log with) and the main thread's CPU time, so the bridge's own share of each leg of a
turn is measured on the bridge's clocks, CPU time included.

CPU time rather than wall time is the figure to compare across runs on a shared machine:
wall time stretches with other processes' load, CPU time barely does.
"""

from __future__ import annotations

import atexit
import gc
import json
import os
import time

OUT = os.environ.get("BRIDGE_PROBE_OUT")
#: Batches shorter than this (CPU seconds) are only counted, not listed.
LIST_BATCH_S = 0.002

if OUT:
    import trio

    if os.environ.get("BRIDGE_PROBE_GC_THRESHOLD"):  # an experiment: e.g. "7000,10,10"
        gc.set_threshold(*(int(x) for x in os.environ["BRIDGE_PROBE_GC_THRESHOLD"].split(",")))

    record: dict[str, list] = {"gc": [], "batches": [], "batch_count": [0]}
    _gc_start: list[tuple[float, float]] = []

    def _on_gc(phase: str, info: dict) -> None:
        if phase == "start":
            _gc_start[:] = [(time.perf_counter(), time.thread_time())]
        elif _gc_start:
            wall0, cpu0 = _gc_start.pop()
            record["gc"].append([time.monotonic(), info["generation"], time.perf_counter() - wall0, time.thread_time() - cpu0, info["collected"]])

    gc.callbacks.append(_on_gc)

    class _Batches(trio.abc.Instrument):
        """CPU and wall time from the end of one I/O wait to the start of the next."""

        def __init__(self) -> None:
            self._start: tuple[float, float] | None = None

        def after_io_wait(self, timeout: float) -> None:
            self._start = (time.monotonic(), time.thread_time())

        def before_io_wait(self, timeout: float) -> None:
            if self._start is None:
                return
            wall0, cpu0 = self._start
            cpu = time.thread_time() - cpu0
            record["batch_count"][0] += 1
            if cpu >= LIST_BATCH_S:
                record["batches"].append([wall0, time.monotonic() - wall0, cpu])

    class _Steps(trio.abc.Instrument):
        """Every task step (name, monotonic, thread CPU), interleaved with the socket stamps."""

        def before_task_step(self, task: trio.lowlevel.Task) -> None:
            record["io"].append(["step", task.name, 0, time.monotonic(), time.thread_time()])

        def before_io_wait(self, timeout: float) -> None:
            record["io"].append(["io_wait", "", 0, time.monotonic(), time.thread_time()])

    _run = trio.run

    def _run_with_probe(*args, **kwargs):  # type: ignore[no-untyped-def]
        extra = (_Steps(),) if os.environ.get("BRIDGE_PROBE_STEPS") else ()
        kwargs["instruments"] = (*kwargs.get("instruments", ()), _Batches(), *extra)
        if os.environ.get("BRIDGE_PROBE_CHUNKS"):
            _probe_chunks()
        return _run(*args, **kwargs)

    def _probe_chunks() -> None:
        """How late each chunk is released (trio time after its playback time, on the
        turn's clock) and how long frames wait in a connection's outbox before the writer
        writes them: tells a chunk held up before the queue from one held in it.

        Since session 6 paced audio is held in the outbox (`TurnStream`) and released by the
        writer: a held frame's wait starts at its release time (or when it was put, if
        that was later), a queued frame's when it was queued, as before."""
        from collections import deque

        from bridge.server import outbox, turn_stream
        from bridge.speech import speaker

        record["released"] = []  # [monotonic, seconds after due (negative: early)]
        record["writes"] = []  # [monotonic, frames, oldest age s, newest age s]
        released = speaker.chunk_released

        def _released(due, starts_clock):  # type: ignore[no-untyped-def]
            if due is not None:  # a turn's first chunk starts its clock: on time by definition, as before
                record["released"].append([time.monotonic(), 0.0 if starts_clock else trio.current_time() - due])
            released(due, starts_clock)

        speaker.chunk_released = _released
        init, run_writer = outbox.Outbox.__init__, outbox.Outbox.run_writer

        class _Stamped:
            """The outbox's send channel, stamping each frame as it is queued."""

            def __init__(self, channel, stamps):  # type: ignore[no-untyped-def]
                self._channel, self._stamps = channel, stamps

            def send_nowait(self, data):  # type: ignore[no-untyped-def]
                self._channel.send_nowait(data)
                self._stamps.append(time.monotonic())

            async def send(self, data):  # type: ignore[no-untyped-def]
                await self._channel.send(data)
                self._stamps.append(time.monotonic())

            def close(self):  # type: ignore[no-untyped-def]
                self._channel.close()

        def _init(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            init(self, *args, **kwargs)
            self._probe_stamps = deque()
            self._probe_taken = []  # ready times of the held frames taken for the next write
            self._send = _Stamped(self._send, self._probe_stamps)

        async def _run_writer(self, send):  # type: ignore[no-untyped-def]
            async def stamped(frames):  # type: ignore[no-untyped-def]
                now = time.monotonic()
                held = self._probe_taken  # the held frames come first in a write
                stamps = held[: len(frames)]
                stamps += [self._probe_stamps.popleft() for _ in frames[len(stamps) :] if self._probe_stamps]
                held.clear()
                if stamps:
                    record["writes"].append([now, len(frames), now - min(stamps), now - max(stamps)])
                await send(frames)

            await run_writer(self, stamped)

        outbox.Outbox.__init__ = _init
        outbox.Outbox.run_writer = _run_writer
        put, take_due = turn_stream.TurnStream.put, turn_stream.TurnStream.take_due
        ready: dict[int, float] = {}  # id of a held frame -> when it could go (monotonic)

        def _put(self, event, release=None, tag=None):  # type: ignore[no-untyped-def]
            held = len(self._held)
            put(self, event, release, tag)
            if len(self._held) > held:  # (numbers only: no object per frame for the collector)
                when, data, _ = self._held[-1]
                ready[id(data)] = time.monotonic() + max(0.0, when - trio.current_time())

        def _take_due(self, now, frames):  # type: ignore[no-untyped-def]
            first = len(frames)
            take_due(self, now, frames)
            at = time.monotonic()
            self._outbox._probe_taken.extend(ready.pop(id(f), at) for f in frames[first:])

        turn_stream.TurnStream.put = _put
        turn_stream.TurnStream.take_due = _take_due

    trio.run = _run_with_probe  # type: ignore[assignment]

    record["io"] = []
    if os.environ.get("BRIDGE_PROBE_IO"):
        _http_peers: set[int] = set()  # ports of the backends, learned from the requests
        _send_all, _receive_some = trio.SocketStream.send_all, trio.SocketStream.receive_some

        def _peer(stream: trio.SocketStream) -> int:
            try:
                return int(stream.socket.getpeername()[1])
            except (OSError, IndexError, TypeError):
                return 0

        async def _stamped_send_all(self: trio.SocketStream, data: bytes | bytearray | memoryview) -> None:
            head, peer = bytes(data[:48]), _peer(self)
            if head.startswith(b"POST "):
                _http_peers.add(peer)
                kind = "llm_out" if b"/chat/" in head else "tts_out" if b"/audio/speech" in head else "http_out"
            elif peer in _http_peers:
                kind = "http_out"  # a request's body
            else:
                kind = "audio_out" if b"ai.speech.audio" in head else "ws_out"
            await _send_all(self, data)
            record["io"].append([kind, peer, len(data), time.monotonic(), time.thread_time()])

        async def _stamped_receive_some(self: trio.SocketStream, max_bytes: int | None = None) -> bytes | bytearray:
            data = await _receive_some(self, max_bytes)
            peer = _peer(self)
            record["io"].append(["http_in" if peer in _http_peers else "ws_in", peer, len(data), time.monotonic(), time.thread_time()])
            return data

        trio.SocketStream.send_all = _stamped_send_all  # type: ignore[method-assign]
        trio.SocketStream.receive_some = _stamped_receive_some  # type: ignore[method-assign]

    @atexit.register
    def _write() -> None:
        for path in (OUT, os.environ.get("BRIDGE_PROBE_COPY")):
            if path:
                with open(path, "w") as f:
                    json.dump(record, f)
